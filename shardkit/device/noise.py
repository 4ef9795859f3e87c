"""Background noise for the device stage: :class:`NoiseBank` (noise recordings held once on the
device, loaded from arrays or a folder) and :class:`AddNoise` (random crops mixed in at a random SNR).

Split from ``augment.py`` because the bank is data handling (file decoding, a memory budget) more than
an augmentation; :class:`AddNoise` follows the conventions of :mod:`shardkit.device.augment`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shardkit.device.augment import _EPS, _Augmentation
from shardkit.errors import UsageError

log = logging.getLogger(__name__)

NOISE_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus")


class NoiseBank(torch.nn.Module):
    """Noise recordings held once, as one float32 tensor on the device, for random crops.

    The recordings are concatenated into the buffer ``bank`` ``(total,)``, with buffers ``starts`` and
    ``lengths`` (int64 ``(n,)``, samples). Memory is bounded: at most ``max_seconds * sample_rate``
    samples (4 bytes each) are kept; recordings past the budget are cut or dropped (logged). Crops
    of a given length may add a cached looped copy of at most the same size (see :meth:`crop`).
    Silent (all-zero) and empty recordings are dropped. ``.to(device)`` moves the bank.

    Args:
        waveforms: 1-D float arrays/tensors in [-1, 1] (int16 is scaled by 1/32768), at ``sample_rate``.
        sample_rate: Hz of the recordings (the same rate as the audio they will be mixed into).
        max_seconds: memory budget in seconds of audio (600 s at 32 kHz ≈ 77 MB).
    """

    def __init__(
        self,
        waveforms: Sequence[Any],
        sample_rate: int,
        max_seconds: float = 600.0,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if sample_rate <= 0 or max_seconds <= 0:
            raise UsageError(f"NoiseBank needs sample_rate > 0 and max_seconds > 0, got {sample_rate}, {max_seconds}")
        self.sample_rate = int(sample_rate)
        self.max_seconds = float(max_seconds)
        budget = int(self.max_seconds * self.sample_rate)
        pieces: list[torch.Tensor] = []
        used = 0
        for i, w in enumerate(waveforms):
            t = torch.as_tensor(np.asarray(w) if not isinstance(w, torch.Tensor) else w)
            if t.dim() != 1:
                raise UsageError(f"NoiseBank: recording {i} must be 1-D (samples,), got shape {tuple(t.shape)}")
            t = t.to(torch.float32) / 32768.0 if t.dtype == torch.int16 else t.to(torch.float32)
            if t.numel() == 0 or not bool(torch.any(t != 0)):
                log.info("NoiseBank: recording %d is empty or silent; dropped", i)
                continue
            if used + t.numel() > budget:
                t = t[: budget - used]
                log.warning("NoiseBank: the %.1f s budget is full; recording %d cut, the rest dropped",
                            self.max_seconds, i)
            if t.numel() > 0:
                pieces.append(t)
                used += t.numel()
            if used >= budget:
                break
        if not pieces:
            raise UsageError("NoiseBank needs at least one non-silent recording")
        lengths = torch.tensor([p.numel() for p in pieces], dtype=torch.int64)
        self.register_buffer("bank", torch.cat(pieces))
        self.register_buffer("lengths", lengths)
        self.register_buffer("starts", torch.cumsum(lengths, 0) - lengths)
        if device is not None:
            self.to(device)

    @classmethod
    def from_folder(
        cls,
        folder: str | os.PathLike[str],
        sample_rate: int,
        max_seconds: float = 600.0,
        device: torch.device | str | None = None,
        extensions: Sequence[str] = NOISE_EXTENSIONS,
    ) -> NoiseBank:
        """Read every audio file under ``folder`` (sorted, recursive) once: decoded with soundfile,
        downmixed and resampled to ``sample_rate`` Hz with soxr, stopping when ``max_seconds`` is full.
        Files that fail to decode are skipped (logged)."""
        from shardkit.errors import DecodeError
        from shardkit.ingest.decode import decode_file

        root = Path(folder)
        if not root.is_dir():
            raise UsageError(f"NoiseBank.from_folder: {root} is not a folder")
        exts = tuple(e.lower() for e in extensions)
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts)
        budget = int(max_seconds * sample_rate)
        waves: list[np.ndarray] = []
        used = 0
        for f in files:
            if used >= budget:
                break
            try:
                pcm = decode_file(f, sample_rate=sample_rate, mono=True).pcm[:, 0]
            except DecodeError as exc:
                log.warning("NoiseBank: skipping %s", exc)
                continue
            waves.append(pcm)
            used += pcm.shape[0]
        if not waves:
            raise UsageError(f"NoiseBank.from_folder: no decodable audio ({', '.join(exts)}) under {root}")
        return cls(waves, sample_rate, max_seconds, device)

    @property
    def num_recordings(self) -> int:
        return int(self.lengths.numel())

    @property
    def seconds(self) -> float:
        """Audio held, in seconds."""
        return self.bank.numel() / self.sample_rate

    def crop(self, batch: int, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``batch`` random crops of ``length`` samples: float32 ``(batch, length)`` on the bank's device.

        Each crop picks a recording uniformly and a uniform start inside it; a recording shorter
        than ``length`` is looped (indices wrap modulo its length). One gather, no host round trip.
        """
        dev = self.bank.device
        rec = torch.randint(0, self.num_recordings, (batch,), generator=generator, device=dev)
        lens = self.lengths[rec]                                                   # (B,)
        offset = (torch.rand(batch, generator=generator, device=dev) * lens).long().clamp_max(lens - 1)
        if self.num_recordings * (length - 1) > self.bank.numel():  # many short recordings: gather
            pos = (offset[:, None] + torch.arange(length, device=dev)) % lens[:, None]  # (B, length)
            return self.bank[self.starts[rec][:, None] + pos]
        looped, starts = self._looped(length)
        # row b is looped[starts[rec_b] + offset_b :][:length]: one copy through an unfold view
        return looped.unfold(0, length, 1)[starts[rec] + offset]

    def _looped(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each recording followed by its own start again, ``length - 1`` samples more (looping as often
        as a short one needs), so that a crop of ``length`` from any offset is contiguous; cached per
        length and device. Used only while the ``n_recordings × (length - 1)`` extra samples are no
        more than the bank itself (so memory stays within twice the bank's budget)."""
        key = (int(length), self.bank.device)
        cached = getattr(self, "_looped_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        pieces = []
        for start, n in zip(self.starts.tolist(), self.lengths.tolist()):
            rec = self.bank[start:start + n]
            reps = -(-(n + length - 1) // n)
            pieces.append(rec.repeat(reps)[: n + length - 1])
        ext_lengths = self.lengths + (length - 1)
        looped = torch.cat(pieces)
        starts = torch.cumsum(ext_lengths, 0) - ext_lengths
        self._looped_cache = (key, looped, starts)
        return looped, starts

    def extra_repr(self) -> str:
        return f"recordings={self.num_recordings}, seconds={self.seconds:.1f}, sample_rate={self.sample_rate}"


class AddNoise(_Augmentation):
    """Mix a random crop of a :class:`NoiseBank` into each clip at an SNR drawn in ``snr_db`` (dB).

    Per example: ``x + s · n`` with ``s = sqrt(P_x / (P_n · 10**(snr/10)))``, ``P`` the mean power of
    the clip and of its noise crop, so the power ratio of the clip to the added noise is exactly the
    drawn SNR. A silent clip (``P_x = 0``) gets no noise. Input and output: float ``(B, T)``.
    """

    def __init__(
        self, bank: NoiseBank, snr_db: tuple[float, float] = (0.0, 20.0), p: float = 0.5, *, seed: int | None = None
    ) -> None:
        super().__init__(p, seed)
        lo, hi = (float(v) for v in snr_db)
        if not lo <= hi:
            raise UsageError(f"AddNoise needs snr_db=(min, max) with min <= max, got {snr_db!r}")
        self.bank = bank
        self.snr_db = (lo, hi)
        self.last_snr_db: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self._active():
            return x
        if x.dim() != 2:
            raise UsageError(f"AddNoise expects float audio (batch, samples), got shape {tuple(x.shape)}")
        if self.bank.bank.device != x.device:
            raise UsageError(f"AddNoise: the noise bank is on {self.bank.bank.device} but the audio on {x.device}")
        g = self._generator(x, generator)
        batch, length = x.shape
        applied = self._draw_applied(batch, x.device, g)
        lo, hi = self.snr_db
        snr = lo + (hi - lo) * torch.rand(batch, generator=g, device=x.device)
        noise = self.bank.crop(batch, length, g).to(x.dtype)
        p_x = x.float().pow(2).mean(-1)
        p_n = noise.float().pow(2).mean(-1)
        scale = torch.sqrt(p_x / (p_n.clamp_min(_EPS) * torch.pow(10.0, snr / 10.0)))
        scale = torch.where(applied, scale, torch.zeros_like(scale)).to(x.dtype)
        added = noise * scale[:, None]
        self.last_snr_db = snr  # (B,) only: keeping the noise itself would hold a batch of memory between steps
        return x + added

    def extra_repr(self) -> str:
        return f"snr_db={self.snr_db}, p={self.p}"
