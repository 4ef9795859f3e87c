"""Where each crop of a recording starts: a fresh keyed position every training epoch, fixed positions for
evaluation. A copy drawn more than once in an epoch is its own crop number (:mod:`.sampling`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from shardkit.dataset.order.keyed import TAG_CROP, hash64
from shardkit.errors import UsageError

if TYPE_CHECKING:
    from shardkit.read.shardset import ShardSet


def crop_frames(ss: ShardSet, crop_seconds: float | None) -> tuple[int, bool]:
    """Stored frames per batch row and whether crops start at random offsets: a ``crop_seconds``
    clip in the codec's frames, or (None) the longest sample, read from its start."""
    if crop_seconds is None:
        return (int(ss.frames.max()) if len(ss) else 0), False
    samples = round(float(crop_seconds) * ss.sample_rate)
    if samples < 1:
        raise UsageError(f"crop_seconds={crop_seconds} is less than one sample at {ss.sample_rate} Hz")
    return ss.codec.frames_for_samples(samples), True


def crop_offsets(
    key_hash: np.ndarray,
    crop_no: np.ndarray,
    frames: np.ndarray,
    crop_frames: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool,
    crops_per_recording: int = 1,
) -> np.ndarray:
    """First frame of each crop, int64 with the shape of ``frames``.

    With ``shuffle`` (training): ``hash(seed, epoch, key_hash, crop_no) % (frames − crop + 1)``, a
    fresh position each epoch. Without (evaluation): fixed; one crop per recording starts at 0,
    several are spread evenly from 0 to ``frames − crop``. Samples with ``frames ≤ crop_frames``
    get 0 (they are read whole and zero-padded).
    """
    frames = np.asarray(frames, dtype=np.int64)
    span = np.maximum(frames - int(crop_frames), 0)
    if shuffle:
        h = hash64(seed, epoch, TAG_CROP, np.asarray(key_hash, dtype=np.uint64),
                   np.asarray(crop_no, dtype=np.uint64))
        return (h % (span + 1).astype(np.uint64)).astype(np.int64)
    c = int(crops_per_recording)
    if c <= 1:
        return np.zeros_like(frames)
    return (np.asarray(crop_no, dtype=np.int64) * span) // (c - 1)
