"""Settings of the log-mel front end, as a small frozen dataclass.

They are part of the on-disk contract (format §3.3: every mel-u8 index and manifest carries them),
so they live with the codecs; the device stage's :class:`~shardkit.device.LogMel` computes what they
describe. This module imports no torch: a manifest or a CLI reads and writes a :class:`MelConfig`
without pulling in the device stack.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from shardkit.errors import UsageError

#: Values accepted for :attr:`MelConfig.normalize`.
NORMALIZE_MODES = ("none", "per_example")


@dataclass(frozen=True)
class MelConfig:
    """How :class:`shardkit.device.LogMel` turns audio into a log-mel spectrogram.

    Attributes:
        sample_rate: Hz of the incoming audio (the shard set's ``audio.sample_rate``).
        n_fft: FFT size in samples.
        win_length: window length in samples; ``None`` means ``n_fft``.
        hop_length: samples between successive frames.
        n_mels: mel bands in the output.
        f_min: lowest mel-filter frequency in Hz.
        f_max: highest mel-filter frequency in Hz; ``None`` means ``sample_rate / 2``.
        power: exponent of the magnitude: ``2.0`` for a power spectrogram, ``1.0`` for magnitude.
        top_db: dynamic range kept below each example's peak, in dB; ``None`` keeps everything.
        normalize: ``"none"``, or ``"per_example"`` to shift and scale each example's
            (n_mels, frames) log-mel to mean 0 and standard deviation 1.

    The STFT is centred (reflect padding, Hann window) with the HTK mel scale, torchaudio's defaults.
    """

    sample_rate: int = 32000
    n_fft: int = 2048
    win_length: int | None = None
    hop_length: int = 512
    n_mels: int = 128
    f_min: float = 50.0
    f_max: float | None = 14000.0
    power: float = 2.0
    top_db: float | None = 80.0
    normalize: str = "none"

    def __post_init__(self) -> None:
        def positive_int(name: str, value: Any) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UsageError(f"MelConfig.{name} must be a positive integer, got {value!r}")

        for name in ("sample_rate", "n_fft", "hop_length", "n_mels"):
            positive_int(name, getattr(self, name))
        if self.win_length is not None:
            positive_int("win_length", self.win_length)
            if self.win_length > self.n_fft:
                raise UsageError(f"MelConfig.win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})")
        nyquist = self.sample_rate / 2
        f_max = self.resolved_f_max
        if not 0 <= self.f_min < f_max <= nyquist:
            raise UsageError(
                f"MelConfig needs 0 <= f_min < f_max <= sample_rate/2 = {nyquist:g} Hz, "
                f"got f_min={self.f_min!r}, f_max={self.f_max!r}; lower f_max or raise sample_rate"
            )
        if self.power not in (1.0, 2.0):
            raise UsageError(f"MelConfig.power must be 1.0 (magnitude) or 2.0 (power), got {self.power!r}")
        if self.top_db is not None and not self.top_db > 0:
            raise UsageError(f"MelConfig.top_db must be positive or None, got {self.top_db!r}")
        if self.normalize not in NORMALIZE_MODES:
            raise UsageError(f"MelConfig.normalize must be one of {NORMALIZE_MODES}, got {self.normalize!r}")

    @classmethod
    def for_rate(cls, sample_rate: int, **overrides: Any) -> MelConfig:
        """The defaults for audio at ``sample_rate`` Hz, with ``overrides``; the default ``f_max``
        (14 kHz) is lowered to the Nyquist frequency ``sample_rate / 2`` when that is below it."""
        if "f_max" not in overrides:
            default = next(f.default for f in dataclasses.fields(cls) if f.name == "f_max")
            overrides["f_max"] = min(float(default), sample_rate / 2) if isinstance(sample_rate, int) else default
        return cls(sample_rate=sample_rate, **overrides)

    @property
    def resolved_f_max(self) -> float:
        """``f_max`` in Hz, with ``None`` resolved to the Nyquist frequency ``sample_rate / 2``."""
        return float(self.sample_rate) / 2 if self.f_max is None else float(self.f_max)

    @property
    def resolved_win_length(self) -> int:
        """``win_length`` in samples, with ``None`` resolved to ``n_fft``."""
        return self.n_fft if self.win_length is None else self.win_length

    def empty_bands(self) -> int:
        """How many mel bands have no FFT bin strictly inside their triangle, so are all zero (as
        torchaudio's ``melscale_fbanks`` builds them, which warns about it): too small an ``n_fft`` for
        ``n_mels`` between ``f_min`` and ``f_max``."""
        import numpy as np

        freqs = np.linspace(0, self.sample_rate // 2, self.n_fft // 2 + 1)
        lo, hi = (2595.0 * np.log10(1.0 + f / 700.0) for f in (self.f_min, self.resolved_f_max))
        edges = 700.0 * (10.0 ** (np.linspace(lo, hi, self.n_mels + 2) / 2595.0) - 1.0)
        inside = (freqs[None, :] > edges[:-2, None]) & (freqs[None, :] < edges[2:, None])
        return int((~inside.any(axis=1)).sum())

    def frames_for(self, num_samples: int) -> int:
        """Spectrogram frames for ``num_samples`` samples of audio: ``1 + num_samples // hop_length``."""
        if num_samples < 0:
            raise UsageError(f"num_samples must be >= 0, got {num_samples}")
        return 1 + num_samples // self.hop_length

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (``None`` kept as ``None``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MelConfig:
        """The inverse of :meth:`to_dict`; missing keys take their defaults.

        Unknown keys are refused (a :class:`UsageError` naming them): a setting this version does
        not understand would silently change the features.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UsageError(
                f"MelConfig does not know {unknown}; it was written by a newer shardkit (upgrade shardkit)"
            )
        return cls(**data)


__all__ = ["NORMALIZE_MODES", "MelConfig"]
