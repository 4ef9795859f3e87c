"""Stage 5 — device: work done on the accelerator, batch by batch, after the loader.

* :class:`MelConfig` — settings of the log-mel front end (plain dataclass, no torch import).
* :class:`LogMel` — ``torch.nn.Module``: int16 ``(B, T)`` / ``(B, C, T)`` → float32 log-mel
  ``(B, n_mels, frames)`` on CPU or CUDA; :func:`dequantize`: a mel-u8 batch → float32 dB.
* ``augment.py`` — batched, seeded augmentations: :class:`RandomGain`, :class:`RandomShift`,
  :class:`NoiseBank` + :class:`AddNoise`, :class:`Mixup`, :class:`SpecAugment`.
* ``pipeline.py`` — :class:`AugmentConfig` (plain dataclass) and :class:`DevicePipeline`: int16 batch →
  augmented log-mel + mixed labels, augmentation on in ``train()``, off in ``eval()``.

The torch modules are imported on first use, so ``from shardkit.device import MelConfig`` does not
load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shardkit.encode.mel_config import MelConfig

if TYPE_CHECKING:
    from shardkit.device.augment import Mixup, RandomGain, RandomShift, SpecAugment
    from shardkit.device.frontend import LogMel, dequantize
    from shardkit.device.noise import AddNoise, NoiseBank
    from shardkit.device.pipeline import AugmentConfig, DevicePipeline

__all__ = [
    "AddNoise",
    "AugmentConfig",
    "DevicePipeline",
    "LogMel",
    "MelConfig",
    "Mixup",
    "NoiseBank",
    "RandomGain",
    "RandomShift",
    "SpecAugment",
    "dequantize",
]

_LAZY = {
    "LogMel": "shardkit.device.frontend",
    "dequantize": "shardkit.device.frontend",
    "AddNoise": "shardkit.device.noise",
    "Mixup": "shardkit.device.augment",
    "NoiseBank": "shardkit.device.noise",
    "RandomGain": "shardkit.device.augment",
    "RandomShift": "shardkit.device.augment",
    "SpecAugment": "shardkit.device.augment",
    "AugmentConfig": "shardkit.device.pipeline",
    "DevicePipeline": "shardkit.device.pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
