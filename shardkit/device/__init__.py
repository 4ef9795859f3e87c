"""Stage 5 — device: work done on the accelerator, batch by batch, after the loader.

* :class:`MelConfig` — settings of the log-mel front end (plain dataclass, no torch import).
* :class:`LogMel` — ``torch.nn.Module``: int16 ``(B, T)`` / ``(B, C, T)`` → float32 log-mel
  ``(B, n_mels, frames)`` on CPU or CUDA.

Augmentations (mixup, gain, time/frequency masking) will live beside these in ``augment.py``.
``LogMel`` is imported on first use, so ``from shardkit.device import MelConfig`` does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shardkit.device.config import MelConfig

if TYPE_CHECKING:
    from shardkit.device.frontend import LogMel

__all__ = ["LogMel", "MelConfig"]


def __getattr__(name: str) -> Any:
    if name == "LogMel":
        from shardkit.device.frontend import LogMel

        return LogMel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
