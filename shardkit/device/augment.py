"""Batched augmentations for the device stage: every op runs on the batch's device, vectorised over
the batch (no Python loop per example), each with a probability ``p`` drawn per example.

Waveform domain, float ``(B, T)`` in [-1, 1] (``(B, C, T)`` also works for gain, shift, mixup):

* :class:`RandomGain` — multiply each clip by a random gain in ``[min_db, max_db]`` dB.
* :class:`RandomShift` — roll each clip in time by a random number of samples (circular).
* :class:`~shardkit.device.noise.NoiseBank` + :class:`~shardkit.device.noise.AddNoise` (``noise.py``) —
  background recordings held once in device memory, random crops cut by index arithmetic on the
  device, mixed in at a random SNR in dB.
* :class:`Mixup` — mix each clip with a batch mate (a permutation) and mix the labels
  (``"weighted"`` sum or elementwise ``"max"``, the union for multi-hot targets).

Spectrogram domain, float ``(B, n_mels, frames)``:

* :class:`SpecAugment` — frequency and time masks built by broadcast comparisons.

Randomness: every op draws only from a ``torch.Generator`` — the one passed at call time, else the
one the module holds (``seed=`` makes it), else torch's default generator for the data's device. The
generator must live on the data's device (a CUDA generator for a CUDA batch); a fixed seed gives the
same output on the same device. Every op is the identity in ``eval()`` mode and for ``p == 0``.

After each call the op keeps what it drew in ``last_*`` attributes (``last_applied``: bool ``(B,)``,
plus e.g. ``last_gain_db``, ``last_snr_db``, ``last_perm``/``last_lam``), for tests and debugging.
"""

from __future__ import annotations

import logging
import math

import torch

from shardkit.errors import UsageError

log = logging.getLogger(__name__)

#: Label-mixing modes of :class:`Mixup`.
LABEL_MODES = ("weighted", "max")
#: File extensions :meth:`NoiseBank.from_folder` reads.
_EPS = 1e-12


def _check_p(p: float, name: str) -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise UsageError(f"{name}: p must be in [0, 1], got {p!r}")
    return float(p)


def _seeded(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator | None:
    return None if seed is None else torch.Generator(device=device).manual_seed(int(seed))


class _Augmentation(torch.nn.Module):
    """Common parts: probability, generator resolution, the per-example 'applied' draw."""

    def __init__(self, p: float, seed: int | None) -> None:
        super().__init__()
        self.p = _check_p(p, type(self).__name__)
        self.generator = _seeded(seed)
        self.last_applied: torch.Tensor | None = None

    def _generator(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Generator | None:
        g = generator if generator is not None else self.generator
        if g is not None and torch.device(g.device).type != x.device.type:
            raise UsageError(
                f"{type(self).__name__}: the generator is on {g.device} but the data is on {x.device}; "
                f"make it with torch.Generator(device={str(x.device)!r}).manual_seed(seed)"
            )
        return g

    def _active(self) -> bool:
        return self.training and self.p > 0.0

    def _draw_applied(self, batch: int, device: torch.device, g: torch.Generator | None) -> torch.Tensor:
        """bool ``(B,)``: which examples this op touches (each with probability ``p``)."""
        applied = torch.rand(batch, generator=g, device=device) < self.p
        self.last_applied = applied
        return applied

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _per_example(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(B,)`` → ``(B, 1, …, 1)`` broadcastable against ``x``."""
    return values.reshape(values.shape[0], *([1] * (x.dim() - 1))).to(x.dtype)


class RandomGain(_Augmentation):
    """Scale each clip by a gain drawn uniformly in ``[min_db, max_db]`` dB (amplitude ``10**(dB/20)``).

    Input and output: float ``(B, ..., T)``, same shape, dtype and device. No clipping is applied.
    """

    def __init__(self, min_db: float = -6.0, max_db: float = 6.0, p: float = 0.5, *, seed: int | None = None) -> None:
        super().__init__(p, seed)
        if not min_db <= max_db:
            raise UsageError(f"RandomGain needs min_db <= max_db, got {min_db!r} > {max_db!r}")
        self.min_db, self.max_db = float(min_db), float(max_db)
        self.last_gain_db: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, *, log_db: bool = False
                ) -> torch.Tensor:
        """``log_db=True``: ``x`` is a log-mel in dB (``(B, n_mels, frames)``) and the gain is added to it,
        which is exactly what the same gain on the waveform does to its (power or magnitude) dB."""
        if not self._active():
            return x
        g = self._generator(x, generator)
        applied = self._draw_applied(x.shape[0], x.device, g)
        db = self.min_db + (self.max_db - self.min_db) * torch.rand(x.shape[0], generator=g, device=x.device)
        db = torch.where(applied, db, torch.zeros_like(db))
        self.last_gain_db = db
        if log_db:
            return x + _per_example(db, x)
        return x * _per_example(torch.pow(10.0, db / 20.0), x)

    def extra_repr(self) -> str:
        return f"min_db={self.min_db}, max_db={self.max_db}, p={self.p}"


class RandomShift(_Augmentation):
    """Roll each clip circularly along time by a random whole number of samples in ``[-max, max]``.

    Give exactly one bound: ``max_frac`` (a fraction of the clip length ``T``) or ``max_seconds``
    (with ``sample_rate`` in Hz). Input and output: ``(B, ..., T)``, same shape, dtype and device;
    the roll is one ``gather`` with per-example indices ``(t - shift) mod T``.
    """

    def __init__(
        self,
        max_frac: float | None = None,
        max_seconds: float | None = None,
        p: float = 0.5,
        *,
        sample_rate: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(p, seed)
        if (max_frac is None) == (max_seconds is None):
            raise UsageError("RandomShift needs exactly one of max_frac or max_seconds")
        if max_frac is not None and not 0.0 <= max_frac <= 1.0:
            raise UsageError(f"RandomShift.max_frac must be in [0, 1], got {max_frac!r}")
        if max_seconds is not None:
            if max_seconds < 0:
                raise UsageError(f"RandomShift.max_seconds must be >= 0, got {max_seconds!r}")
            if not sample_rate or sample_rate <= 0:
                raise UsageError("RandomShift(max_seconds=...) also needs sample_rate (Hz)")
        self.max_frac, self.max_seconds, self.sample_rate = max_frac, max_seconds, sample_rate
        self.last_shift: torch.Tensor | None = None

    def max_shift(self, num_samples: int) -> int:
        """Largest shift in samples for clips of ``num_samples`` samples (never more than ``T - 1``)."""
        if self.max_frac is not None:
            m = int(self.max_frac * num_samples)
        else:
            m = int(round(self.max_seconds * self.sample_rate))  # type: ignore[operator]
        return max(0, min(m, num_samples - 1))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self._active() or x.shape[-1] == 0:
            return x
        g = self._generator(x, generator)
        batch, length = x.shape[0], x.shape[-1]
        applied = self._draw_applied(batch, x.device, g)
        m = self.max_shift(length)
        shift = torch.randint(-m, m + 1, (batch,), generator=g, device=x.device)
        shift = torch.where(applied, shift, torch.zeros_like(shift))
        self.last_shift = shift
        # y[..., t] = x[..., (t - shift) mod T] is the window [(-shift) mod T, +T) of x twice over: one
        # copy of the rows through an unfold view, no (B, T) index tensor (which cost ~5× more on a CPU)
        rows = x.reshape(batch, -1, length)                                          # (B, R, T)
        start = torch.remainder(-shift, length)
        windows = torch.cat([rows, rows], dim=-1).unfold(-1, length, 1)              # (B, R, T + 1, T)
        b_idx = torch.arange(batch, device=x.device)[:, None]
        r_idx = torch.arange(rows.shape[1], device=x.device)[None, :]
        return windows[b_idx, r_idx, start[:, None]].reshape(x.shape)

    def extra_repr(self) -> str:
        bound = f"max_frac={self.max_frac}" if self.max_frac is not None else f"max_seconds={self.max_seconds}"
        return f"{bound}, p={self.p}"


def sample_beta(alpha: float, n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``n`` draws of Beta(alpha, alpha) from ``generator`` on ``device``, float32 ``(n,)``.

    ``torch.distributions.Beta`` takes no generator, so this is Marsaglia–Tsang for Gamma(alpha + 1),
    boosted by ``U**(1/alpha)``, vectorised with 16 candidates per draw (acceptance ≥ 95 % each).
    """
    a = float(alpha)
    d = a + 1.0 - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    k = 16
    z = torch.randn(2, n, k, generator=generator, device=device)
    u = torch.rand(2, n, k, generator=generator, device=device)
    v = (1.0 + c * z).pow(3)
    ok = (v > 0) & (torch.log(u.clamp_min(_EPS)) < 0.5 * z * z + d - d * v + d * torch.log(v.clamp_min(_EPS)))
    first = torch.argmax(ok.to(torch.int8), dim=-1, keepdim=True)                  # first accepted candidate
    gam = (d * v.clamp_min(_EPS)).gather(-1, first).squeeze(-1)                     # Gamma(a + 1), (2, n)
    boost = torch.rand(2, n, generator=generator, device=device).clamp_min(_EPS).pow(1.0 / a)
    gam = gam * boost                                                               # Gamma(a)
    return gam[0] / (gam[0] + gam[1]).clamp_min(_EPS)


class Mixup(_Augmentation):
    """Mix each clip with a batch mate: ``x' = lam · x + (1 - lam) · x[perm]``.

    ``perm`` is one random permutation of the batch; ``lam ~ Beta(alpha, alpha)`` per example
    (``lam = 1`` where the example is not picked, probability ``1 - p``). Labels (float ``(B, C)``,
    one-hot or multi-hot; bool/int are cast to float32 when mixup runs) are mixed by ``label_mode``:

    * ``"weighted"``: ``lam · y + (1 - lam) · y[perm]``;
    * ``"max"``: ``max(y, y[perm])`` for mixed examples — the union of the two label sets.

    ``forward(x, labels)`` returns ``(x', labels')`` (``labels'`` is ``None`` when ``labels`` is); the
    draws are kept in ``last_perm`` (int64 ``(B,)``), ``last_lam`` (float32 ``(B,)``) and
    ``last_applied``. Works on waveforms ``(B, T)`` or spectrograms ``(B, n_mels, frames)``.

    Mixing audio is not summing log-mels: with ``log_db=True`` (``x`` in dB, e.g. dequantised mel-u8)
    the mix is done in the power domain, ``10·log10(lam²·10^(x/10) + (1-lam)²·10^(x[perm]/10))`` — the
    expected power of the waveform mix ``lam·a + (1-lam)·b`` of two uncorrelated clips (their cross
    term averages to zero over a frame; a single frame can differ).
    """

    def __init__(
        self, alpha: float = 0.4, p: float = 0.5, label_mode: str = "weighted", *, seed: int | None = None
    ) -> None:
        super().__init__(p, seed)
        if not alpha > 0:
            raise UsageError(f"Mixup.alpha must be > 0, got {alpha!r}")
        if label_mode not in LABEL_MODES:
            raise UsageError(f"Mixup.label_mode must be one of {LABEL_MODES}, got {label_mode!r}")
        self.alpha, self.label_mode = float(alpha), label_mode
        self.last_perm: torch.Tensor | None = None
        self.last_lam: torch.Tensor | None = None

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, generator: torch.Generator | None = None,
        *, log_db: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if labels is not None and labels.shape[0] != x.shape[0]:
            raise UsageError(f"Mixup: {labels.shape[0]} labels for a batch of {x.shape[0]}")
        if not self._active() or x.shape[0] < 2:
            return x, labels
        if labels is not None and not labels.is_floating_point():
            labels = labels.to(torch.float32)
        g = self._generator(x, generator)
        batch = x.shape[0]
        applied = self._draw_applied(batch, x.device, g)
        perm = torch.randperm(batch, generator=g, device=x.device)
        lam = sample_beta(self.alpha, batch, g, x.device)
        lam = torch.where(applied, lam, torch.ones_like(lam))
        self.last_perm, self.last_lam = perm, lam
        lx = _per_example(lam, x)
        if log_db:
            power = lx.square() * torch.pow(10.0, x / 10.0) + (1.0 - lx).square() * torch.pow(10.0, x[perm] / 10.0)
            mixed = 10.0 * torch.log10(power.clamp_min(1e-10))
        else:
            mixed = lx * x + (1.0 - lx) * x[perm]
        if labels is None:
            return mixed, None
        other = labels[perm]
        if self.label_mode == "weighted":
            ly = _per_example(lam, labels)
            out = ly * labels + (1.0 - ly) * other
        else:
            out = torch.where(_per_example(applied, labels).bool(), torch.maximum(labels, other), labels)
        return mixed, out

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, p={self.p}, label_mode={self.label_mode!r}"


class SpecAugment(_Augmentation):
    """Frequency and time masking of log-mel spectrograms, float ``(B, n_mels, frames)``.

    For each picked example: ``freq_masks`` bands of width uniform in ``[0, freq_width]`` mel bins and
    ``time_masks`` spans of width uniform in ``[0, time_width]`` frames, each at a uniform start that
    keeps it inside the spectrogram (widths are capped at the axis length). Masked cells become
    ``fill``: a number, or ``"mean"`` (each example's own mean, neutral for un-normalised dB).
    Masks are built with broadcast comparisons ``start <= i < start + width``; they are kept in
    ``last_freq_mask`` (bool ``(B, n_mels)``) and ``last_time_mask`` (bool ``(B, frames)``).
    """

    def __init__(
        self,
        freq_masks: int = 2,
        freq_width: int = 16,
        time_masks: int = 2,
        time_width: int = 32,
        p: float = 0.5,
        *,
        fill: float | str = "mean",
        seed: int | None = None,
    ) -> None:
        super().__init__(p, seed)
        for name, v in (("freq_masks", freq_masks), ("freq_width", freq_width),
                        ("time_masks", time_masks), ("time_width", time_width)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise UsageError(f"SpecAugment.{name} must be an integer >= 0, got {v!r}")
        if isinstance(fill, str) and fill != "mean":
            raise UsageError(f"SpecAugment.fill must be a number or 'mean', got {fill!r}")
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width
        self.fill = fill
        self.last_freq_mask: torch.Tensor | None = None
        self.last_time_mask: torch.Tensor | None = None

    @staticmethod
    def _axis_mask(batch: int, size: int, count: int, max_width: int, g: torch.Generator | None,
                   device: torch.device) -> torch.Tensor:
        """bool ``(batch, size)``: the union of ``count`` random spans of width ``0..max_width``."""
        if count == 0 or size == 0:
            return torch.zeros(batch, size, dtype=torch.bool, device=device)
        w_max = min(max_width, size)
        width = (torch.rand(batch, count, 1, generator=g, device=device) * (w_max + 1)).long()   # 0..w_max
        start = (torch.rand(batch, count, 1, generator=g, device=device) * (size - width + 1)).long()
        i = torch.arange(size, device=device)
        return ((i >= start) & (i < start + width)).any(dim=1)

    def forward(self, spec: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self._active():
            return spec
        if spec.dim() != 3:
            raise UsageError(f"SpecAugment expects (batch, n_mels, frames), got shape {tuple(spec.shape)}")
        g = self._generator(spec, generator)
        batch, n_mels, frames = spec.shape
        applied = self._draw_applied(batch, spec.device, g)
        fmask = self._axis_mask(batch, n_mels, self.freq_masks, self.freq_width, g, spec.device)
        tmask = self._axis_mask(batch, frames, self.time_masks, self.time_width, g, spec.device)
        fmask &= applied[:, None]
        tmask &= applied[:, None]
        self.last_freq_mask, self.last_time_mask = fmask, tmask
        mask = fmask[:, :, None] | tmask[:, None, :]                               # (B, n_mels, frames)
        if self.fill == "mean":
            value = spec.mean(dim=(1, 2), keepdim=True)
        else:
            value = torch.tensor(float(self.fill), dtype=spec.dtype, device=spec.device)
        return torch.where(mask, value.to(spec.dtype), spec)

    def extra_repr(self) -> str:
        return (f"freq_masks={self.freq_masks}, freq_width={self.freq_width}, time_masks={self.time_masks}, "
                f"time_width={self.time_width}, p={self.p}, fill={self.fill!r}")


__all__ = [
    "LABEL_MODES",
    "Mixup",
    "RandomGain",
    "RandomShift",
    "SpecAugment",
    "sample_beta",
]
