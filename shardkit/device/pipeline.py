"""The device stage as one module: a batch of a shard set → augmented float log-mel + (mixed) labels.

::

    pipe = DevicePipeline.for_shard_set(dataset, AugmentConfig(gain_p=0.5, mixup_p=0.5, spec_p=0.5),
                                        seed=0).to(device)
    for batch in loader:
        mel, y = pipe.batch(batch)          # float32 (B, n_mels, frames), (B, C), on pipe's device
    pipe.eval()                             # validation: front end only

:meth:`DevicePipeline.for_shard_set` builds the front end the set's codec needs, so training code is
the same for every codec: a waveform codec (wav16: int16 ``batch["audio"]``) gets a log-mel front end
(the set's sample rate, or the ``mel`` given); a spectrogram codec (mel-u8: uint8 ``batch["mel"]`` and
``batch["mel_range"]``) gets the dequantiser and the front end settings it was packed with (only
``normalize`` may differ). The pipeline picks its path from the codec's declared batch key and fields,
never from a tensor's dtype. Built directly, ``DevicePipeline(MelConfig(...), AugmentConfig(...))`` is
called as ``pipe(audio, labels)``, or ``pipe(mel_u8, labels, mel_range=...)`` for a mel-u8 batch.

Order: int16 → float32 in [-1, 1) (downmix of ``(B, C, T)``) → gain → shift → noise → mixup →
:class:`LogMel` → SpecAugment. All random draws come from one ``torch.Generator`` on the module's
device, seeded with ``seed`` (re-created from the same seed when ``.to()`` changes the device).

Resume: the generator's state is part of ``pipe.state_dict()`` (torch's extra state, key
``_extra_state``: ``{"format", "seed", "device", "generator"}``), so a checkpoint that saves
``pipe.state_dict()`` beside ``dataset.state_dict(batches_done)`` and loads both continues with the
augmentations the uninterrupted run draws. A CPU and a CUDA generator are different algorithms: a state
saved on one device type is applied when the pipeline is on that type (``.to()`` before or after
``load_state_dict``). An unseeded pipeline (``seed=None``) draws from torch's default generator, which
``torch.get_rng_state`` / ``torch.cuda.get_rng_state`` save.

A mel-u8 batch (``pack --format mel-u8``) goes: dequantise → gain (added in dB: exact) → shift (roll
of whole frames) → mixup (in the power domain, see :class:`Mixup`) → per-example normalisation →
SpecAugment. Not available on mel-u8: background noise
(an SNR is defined on waveforms, and a stored log-mel has no phase to add noise to; mix it in before
packing or pack wav16), and anything else that needs the waveform (pitch/time stretch, filters). The
pipeline's :class:`MelConfig` must be the shard set's (what :meth:`DevicePipeline.for_shard_set` takes;
only ``normalize`` may differ).

GPU memory (measured with ``python -m benchmarks.device --device cuda`` on an NVIDIA H100 80GB,
torch 2.11, default MelConfig, 5 s clips at 32 kHz, every augmentation on): the peak
``torch.cuda.max_memory_allocated`` of one training forward, int16 input included, is 0.48 GB at
batch 64, 0.93 GB at 128 and 1.83 GB at 256 — about 7 MB per clip, most of it the STFT
(``B·(n_fft/2+1)·frames`` complex64) and its power; the caching allocator reserves 0.76 / 1.44 /
2.97 GB. ``eval()`` (front end only) peaks at 0.46 / 0.91 / 1.81 GB. Add the noise bank, 4 bytes
per sample held (600 s at 32 kHz ≈ 77 MB), and up to as much again for its looped-crop cache
(:meth:`NoiseBank.crop`). A mel-u8 batch needs no STFT: 40 KB of uint8
plus 160 KB of float32 per clip (≈ 13 MB at batch 64). Full tables: docs/benchmarks-device.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from shardkit.device.augment import LABEL_MODES, Mixup, RandomGain, RandomShift, SpecAugment
from shardkit.device.frontend import LogMel, dequantize
from shardkit.device.noise import AddNoise, NoiseBank
from shardkit.encode.base import Codec
from shardkit.encode.mel_config import MelConfig
from shardkit.errors import UsageError

if TYPE_CHECKING:
    from shardkit.dataset.dataset import ShardDataset
    from shardkit.read.shardset import ShardSet

#: the batch entries each front end reads, by the codec's batch key: waveform frames are turned into a
#: log-mel; stored log-mel frames (mel-u8) are dequantised with their per-row dB range
FRONT_ENDS: dict[str, tuple[str, ...]] = {"audio": (), "mel": ("mel_range",)}


@dataclass(frozen=True)
class AugmentConfig:
    """Settings of the device-stage augmentations. Every probability defaults to 0 (off).

    Attributes:
        gain_p, gain_min_db, gain_max_db: :class:`RandomGain` probability and range in dB.
        shift_p, shift_max_frac: :class:`RandomShift` probability and largest roll as a fraction of
            the clip length.
        noise_p, noise_snr_db: :class:`AddNoise` probability and (min, max) SNR in dB; needs a
            :class:`NoiseBank` passed to :class:`DevicePipeline`.
        mixup_p, mixup_alpha, mixup_label_mode: :class:`Mixup` probability, Beta(alpha, alpha)
            parameter and label mode (``"weighted"`` or ``"max"``).
        spec_p, freq_masks, freq_width, time_masks, time_width, spec_fill: :class:`SpecAugment`
            probability, mask counts, largest widths (mel bins, frames) and fill value.
    """

    gain_p: float = 0.0
    gain_min_db: float = -6.0
    gain_max_db: float = 6.0
    shift_p: float = 0.0
    shift_max_frac: float = 0.5
    noise_p: float = 0.0
    noise_snr_db: tuple[float, float] = (3.0, 30.0)
    mixup_p: float = 0.0
    mixup_alpha: float = 0.4
    mixup_label_mode: str = "weighted"
    spec_p: float = 0.0
    freq_masks: int = 2
    freq_width: int = 16
    time_masks: int = 2
    time_width: int = 32
    spec_fill: float | str = "mean"

    def __post_init__(self) -> None:
        for name in ("gain_p", "shift_p", "noise_p", "mixup_p", "spec_p"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise UsageError(f"AugmentConfig.{name} must be in [0, 1], got {v!r}")
        if self.mixup_label_mode not in LABEL_MODES:
            raise UsageError(
                f"AugmentConfig.mixup_label_mode must be one of {LABEL_MODES}, got {self.mixup_label_mode!r}"
            )
        object.__setattr__(self, "noise_snr_db", tuple(float(v) for v in self.noise_snr_db))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        d = dataclasses.asdict(self)
        d["noise_snr_db"] = list(self.noise_snr_db)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentConfig:
        """The inverse of :meth:`to_dict`; unknown keys raise :class:`UsageError`."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise UsageError(f"AugmentConfig does not know {unknown}")
        return cls(**data)


class DevicePipeline(torch.nn.Module):
    """Front end plus augmentations from one :class:`MelConfig` and one :class:`AugmentConfig`.

    ``forward(audio, labels=None) -> (logmel, labels)``:

    * ``audio``: int16 PCM or float in [-1, 1], ``(B, T)`` or ``(B, C, T)``, at ``mel.sample_rate`` Hz,
      on the module's device; or a uint8 mel-u8 batch ``(B, n_mels, frames)`` with ``mel_range``
      float32 ``(B, 2)`` (see the module docstring for what changes).
    * ``labels``: optional ``(B, C)`` targets (cast to float32 when mixup is on), or ``None``.
    * returns float32 ``(B, n_mels, 1 + T // hop_length)`` and the labels (mixed in training when
      mixup is on, else unchanged).

    ``train()`` (the default) applies the augmentations; ``eval()`` runs the front end only.
    :meth:`for_shard_set` makes one for a shard set's batches, run with :meth:`batch`.
    """

    #: the batch entry :meth:`batch` reads (the codec's ``batch_key``), and the codec's batch fields
    #: passed along (``mel_range``); None for a pipeline not made by :meth:`for_shard_set`
    batch_key: str | None = None
    batch_fields: tuple[str, ...] = ()

    def __init__(
        self,
        mel: MelConfig | None = None,
        augment: AugmentConfig | None = None,
        *,
        noise_bank: NoiseBank | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.mel_config = mel if mel is not None else MelConfig()
        self.augment_config = a = augment if augment is not None else AugmentConfig()
        if a.noise_p > 0 and noise_bank is None:
            raise UsageError(
                "AugmentConfig.noise_p > 0 needs a noise bank: DevicePipeline(..., noise_bank=NoiseBank(...))"
            )
        if noise_bank is not None and noise_bank.sample_rate != self.mel_config.sample_rate:
            raise UsageError(
                f"the noise bank is at {noise_bank.sample_rate} Hz but the audio at {self.mel_config.sample_rate} Hz"
            )
        self.gain = RandomGain(a.gain_min_db, a.gain_max_db, p=a.gain_p)
        self.shift = RandomShift(max_frac=a.shift_max_frac, p=a.shift_p)
        self.noise = AddNoise(noise_bank, a.noise_snr_db, p=a.noise_p) if noise_bank is not None else None
        self.mixup = Mixup(a.mixup_alpha, p=a.mixup_p, label_mode=a.mixup_label_mode)
        self.frontend = LogMel(self.mel_config)
        self.specaug = SpecAugment(a.freq_masks, a.freq_width, a.time_masks, a.time_width, p=a.spec_p,
                                   fill=a.spec_fill)
        self.seed = seed
        self._pending: tuple[str, torch.Tensor] | None = None
        self.generator = self._make_generator()

    @classmethod
    def for_shard_set(cls, shards: ShardSet | ShardDataset | Codec, augment: AugmentConfig | None = None, *,
                      mel: MelConfig | None = None, noise_bank: NoiseBank | None = None,
                      seed: int | None = None) -> DevicePipeline:
        """The pipeline for batches of ``shards`` (a :class:`~shardkit.ShardSet`, a
        :class:`~shardkit.ShardDataset` or their codec), run with :meth:`batch`.

        The front end follows the codec (see the module docstring): a waveform set takes ``mel`` (default
        ``MelConfig.for_rate(sample_rate)``; its rate must be the set's); a set of stored log-mels uses
        the front end it was packed with, ``mel`` only changing ``normalize``. Raises
        :class:`~shardkit.errors.UsageError` for a ``mel`` that does not fit the set, or a codec whose
        batches no front end here reads.
        """
        codec = _codec_of(shards)
        fields = tuple(codec.batch_field_specs())
        if FRONT_ENDS.get(codec.batch_key) != fields:
            raise UsageError(f"the device stage has no front end for codec {codec.codec_id!r} (batch key "
                             f"{codec.batch_key!r}, fields {list(fields)}); read its batches yourself")
        pipe = cls(_front_end(codec, mel), augment, noise_bank=noise_bank, seed=seed)
        pipe.batch_key, pipe.batch_fields = codec.batch_key, fields
        return pipe

    @property
    def device(self) -> torch.device:
        """Where the pipeline computes (its front end's device)."""
        return self.frontend.device

    def _make_generator(self) -> torch.Generator | None:
        if self.seed is None:
            return None
        g = torch.Generator(device=self.device).manual_seed(int(self.seed))
        if self._pending is not None and self._pending[0] == self.device.type:
            g.set_state(self._pending[1])
            self._pending = None
        return g

    def get_extra_state(self) -> dict[str, Any]:
        """The random state for ``state_dict()``: seed, device type and the generator's state (a uint8
        tensor; ``None`` when unseeded)."""
        g = self.generator
        if self._pending is not None:  # loaded for another device type, not applied yet: saved as it came
            return {"format": 1, "seed": self.seed, "device": self._pending[0], "generator": self._pending[1]}
        return {"format": 1, "seed": self.seed, "device": self.device.type,
                "generator": None if g is None else g.get_state()}

    def set_extra_state(self, state: Any) -> None:
        """Restore :meth:`get_extra_state` (from ``load_state_dict``); :class:`UsageError` for a state
        that is not one."""
        seed, device, gen = _checked_extra_state(state)
        self.seed = seed
        self._pending = None if gen is None else (device, gen)
        self.generator = self._make_generator()

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> DevicePipeline:
        before = self.device
        out = super()._apply(fn, *args, **kwargs)
        if self.device != before:
            self.generator = self._make_generator()
        return out

    def reseed(self, seed: int | None = None) -> None:
        """Restart the random stream (from ``seed``, or the constructor's seed)."""
        if seed is not None:
            self.seed = seed
        self.generator = self._make_generator()

    def batch(self, batch: Mapping[str, Any], *, non_blocking: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One :class:`~shardkit.ShardDataset` batch → ``(logmel, labels)`` on :attr:`device`: the
        codec's entry (``audio`` or ``mel``), its fields (``mel_range``) and ``labels`` (if any) are
        moved there (``non_blocking``) and run through :meth:`forward`. Only for a pipeline made by
        :meth:`for_shard_set`."""
        if self.batch_key is None:
            raise UsageError("DevicePipeline.batch() reads a batch by its shard set's codec: make the pipeline "
                             "with DevicePipeline.for_shard_set(dataset, ...), or call pipe(audio, labels)")
        missing = [k for k in (self.batch_key, *self.batch_fields) if k not in batch]
        if missing:
            raise UsageError(f"the batch has no {missing} entries (it has {sorted(batch)}); this pipeline was "
                             "made for a shard set of another codec: make it with for_shard_set of this set")
        dev = self.device
        fields = {k: batch[k].to(dev, non_blocking=non_blocking) for k in self.batch_fields}
        labels = batch.get("labels")
        labels = labels.to(dev, non_blocking=non_blocking) if labels is not None else None
        return self(batch[self.batch_key].to(dev, non_blocking=non_blocking), labels, **fields)

    def forward(
        self, audio: torch.Tensor, labels: torch.Tensor | None = None, *, mel_range: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.batch_key == "mel" or mel_range is not None:  # the stored log-mel's front end
            return self._forward_mel_u8(audio, labels, mel_range)
        if isinstance(audio, torch.Tensor) and audio.dtype == torch.uint8:  # to name the fix, not to dispatch
            raise UsageError("a uint8 batch is a mel-u8 batch: pass its dB ranges, pipe(batch['mel'], labels, "
                             "mel_range=batch['mel_range']), or use DevicePipeline.for_shard_set(...).batch(batch)")
        x = self.frontend.to_float_mono(audio)                     # float32 (B, T), checks the device
        g = self.generator
        if self.training:
            x = self.gain(x, g)
            x = self.shift(x, g)
            if self.noise is not None:
                x = self.noise(x, g)
            x, labels = self.mixup(x, labels, g)
        mel = self.frontend(x)
        if self.training:
            mel = self.specaug(mel, g)
        return mel, labels

    def _forward_mel_u8(self, mel_u8: torch.Tensor, labels: torch.Tensor | None, mel_range: torch.Tensor | None
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if mel_range is None:
            raise UsageError("a uint8 mel batch needs its dB ranges: pipe(batch['mel'], labels, "
                             "mel_range=batch['mel_range'])")
        if mel_u8.dtype != torch.uint8:
            raise UsageError(f"mel_range is for uint8 mel-u8 batches; this batch is {mel_u8.dtype} audio")
        n_mels = self.mel_config.n_mels
        if mel_u8.dim() != 3 or mel_u8.shape[1] != n_mels:
            raise UsageError(f"the pipeline computes {n_mels} mel bands but the batch has shape "
                             f"{tuple(mel_u8.shape)}; build it with MelConfig.from_dict(shards.mel)")
        if mel_u8.device != self.device:
            raise UsageError(f"DevicePipeline is on {self.device} but the batch is on {mel_u8.device}; move it with "
                             f".to({str(self.device)!r}, non_blocking=True)")
        db = dequantize(mel_u8, mel_range)
        g = self.generator
        if self.training:
            if self.noise is not None and self.noise.p > 0:
                raise UsageError("background noise needs waveforms: a mel-u8 batch has no phase to mix noise "
                                 "into at a given SNR. Set noise_p=0 for mel-u8 sets, or pack wav16")
            db = self.gain(db, g, log_db=True)
            db = self.shift(db, g)
            db, labels = self.mixup(db, labels, g, log_db=True)
        db = self.frontend.normalize(db)
        if self.training:
            db = self.specaug(db, g)
        return db, labels


def _checked_extra_state(state: Any) -> tuple[int | None, str, torch.Tensor | None]:
    """(seed, device type, generator state) of a pipeline's saved random state, or :class:`UsageError`."""
    def bad(what: str) -> UsageError:
        return UsageError(f"DevicePipeline.load_state_dict: the saved random state {what}; load a "
                          "pipe.state_dict() saved by shardkit (or build the pipeline afresh with seed=)")

    if not isinstance(state, dict) or state.get("format") != 1:
        raise bad("is not format 1 of a DevicePipeline's state")
    seed, device, gen = state.get("seed"), state.get("device"), state.get("generator")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise bad(f"has seed {seed!r}, not an integer or None")
    if not isinstance(device, str) or device not in ("cpu", "cuda", "mps", "xpu"):
        raise bad(f"names device {device!r}")
    if gen is None:
        return None, device, None
    if seed is None:
        raise bad("has a generator state but no seed")
    if not isinstance(gen, torch.Tensor) or gen.dtype != torch.uint8 or gen.dim() != 1:
        raise bad("holds no generator state (a 1-D uint8 tensor)")
    if device == "cpu":
        try:
            torch.Generator().set_state(gen)
        except RuntimeError as exc:
            raise bad(f"is not a CPU generator's state ({exc})") from None
    return seed, device, gen.clone()


def _codec_of(shards: Any) -> Codec:
    """The codec of a shard set, a dataset over one, or a codec itself."""
    from shardkit.dataset.dataset import ShardDataset
    from shardkit.read.shardset import ShardSet

    if isinstance(shards, ShardDataset):
        return shards.shard_set.codec
    if isinstance(shards, ShardSet):
        return shards.codec
    if isinstance(shards, Codec):
        return shards
    raise UsageError(f"DevicePipeline.for_shard_set takes a ShardSet, a ShardDataset or a Codec, got "
                     f"{type(shards).__name__}")


def _front_end(codec: Codec, mel: MelConfig | None) -> MelConfig:
    """The :class:`MelConfig` for ``codec``'s batches: the stored front end (``mel`` may only change its
    ``normalize``), or ``mel`` / the defaults at the codec's sample rate for waveforms."""
    if mel is not None and not isinstance(mel, MelConfig):
        raise UsageError(f"mel must be a shardkit.MelConfig, got {type(mel).__name__}")
    stored = codec.mel
    if stored is not None:
        if mel is not None and dataclasses.replace(mel, normalize=stored.normalize) != stored:
            raise UsageError(f"this {codec.codec_id} set stores log-mels made with {stored}; the pipeline uses "
                             "that front end: pass mel=None, or only change normalize "
                             "(dataclasses.replace(ShardSet.codec.mel, normalize='per_example'))")
        return mel if mel is not None else stored
    if mel is None:
        return MelConfig.for_rate(codec.sample_rate)
    if mel.sample_rate != codec.sample_rate:
        raise UsageError(f"mel is set for {mel.sample_rate} Hz but the shard set's audio is {codec.sample_rate} Hz; "
                         f"use MelConfig.for_rate({codec.sample_rate}, ...)")
    return mel


__all__ = ["FRONT_ENDS", "AugmentConfig", "DevicePipeline"]
