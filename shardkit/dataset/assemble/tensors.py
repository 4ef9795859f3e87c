"""The tensors of one batch and the batch's own type: where they live (shared memory in a DataLoader
worker), how large a batch may be, and the warning for a DataLoader that batches the batches again."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data._utils.collate import collate, default_collate_fn_map

from shardkit.dataset import transport
from shardkit.dataset.options import ReadOptions
from shardkit.errors import UsageError
from shardkit.read.shardset import ShardSet
from shardkit.units import format_size


class ShardBatch(dict):
    """One batch as :class:`~.reader.BatchReader` makes it: a dict (see :class:`~shardkit.read.ShardDataset`).
    Its own type lets torch's ``default_collate`` recognise a batch of batches: ``DataLoader(ds, batch_size=16)``
    without ``batch_size=None`` warns once per process (the batches are still collated, as torch does)."""


_WARNED_BATCHING: set[int] = set()  # the processes (DataLoader workers are forks) that warned


def _collate_batches(batch: Sequence[ShardBatch], *, collate_fn_map: dict[Any, Any] | None = None) -> Any:
    if os.getpid() not in _WARNED_BATCHING:
        _WARNED_BATCHING.add(os.getpid())
        # explicit, with no registry: a forked worker inherits its parent's "already shown" memory
        warnings.warn_explicit("the DataLoader batches ShardDataset's batches (each item is already a batch of "
                               "batch_size rows): pass DataLoader(ds, batch_size=None, ...) and set the batch size "
                               "on the dataset", UserWarning, __file__, 0, module=__name__)
    return collate([dict(b) for b in batch], collate_fn_map=collate_fn_map)


default_collate_fn_map[ShardBatch] = _collate_batches

#: the most one batch (audio and labels) may take: ``batch_size=10**9`` or ``crop_seconds=1e9`` is refused by
#: name, never allocated
MAX_BATCH_BYTES = 4 << 30


def check_batch_bytes(ss: ShardSet, opts: ReadOptions, t_len: int, n_classes: int) -> None:
    """Raise :class:`UsageError` when one batch of ``opts.batch_size`` rows of ``t_len`` frames (and its
    labels) would take more than :data:`MAX_BATCH_BYTES`."""
    total = opts.batch_size * (t_len * ss.frame_bytes + 4 * n_classes + 9)
    if total > MAX_BATCH_BYTES:
        crop = f"crop_seconds={opts.crop_seconds:g}" if opts.crop_seconds is not None else "the longest segment"
        raise UsageError(f"{ss.root}: one batch of batch_size={opts.batch_size} rows of {t_len} frames ({crop}) "
                         f"would take {format_size(total)}, more than {format_size(MAX_BATCH_BYTES)}; lower "
                         "batch_size or crop_seconds")


def new_batch(b: int, audio_shape: tuple[int, ...], n_classes: int, in_worker: bool,
              dtype: Any = np.int16, fields: Sequence[tuple[tuple[int, ...], Any]] = ()) -> list[torch.Tensor]:
    """Uninitialised [audio ``dtype`` (B, ...), labels float32 (B, n_classes), valid bool (B,),
    index int64 (B,)] tensors to fill, then one per ``fields`` entry (shape without B, dtype): the
    codec's own batch fields.

    In a DataLoader worker they live in one reusable shared-memory slot (:mod:`.transport`), so
    sending the batch to the main process copies nothing; elsewhere they are plain memory.
    """
    parts = [((b, *audio_shape), dtype), ((b, n_classes), np.float32), ((b,), np.bool_), ((b,), np.int64)]
    parts += [((b, *shape), field_dtype) for shape, field_dtype in fields]
    pool = transport.worker_pool() if in_worker else None
    tensors = pool.batch(parts) if pool is not None else None
    if tensors is None:
        tensors = [torch.from_numpy(np.empty(shape, dtype=dtype)) for shape, dtype in parts]
    return list(tensors)


def zero_tails(buf: np.ndarray, nread: np.ndarray, t_len: int, lanes: int) -> None:
    """Zero each row of ``buf`` (B, T·lanes) after the ``nread`` (B,) frames read into it."""
    for j in np.flatnonzero(nread < t_len).tolist():
        buf[j, int(nread[j]) * lanes:] = 0


#: frames per block of :func:`transpose_lanes` (best of 128/256/512 for 64 × 501 × 128 uint8 here)
TRANSPOSE_FRAMES = 128
#: bytes per frame from which :func:`transpose_lanes` goes block by block (a mel-u8 frame: 128)
WIDE_FRAME_BYTES = 64


def transpose_lanes(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst`` (B, lanes, T) ← ``src`` (B, T, lanes): interleaved frames into one row per lane.

    Wide frames (mel-u8: 128 bins of 1 byte) are copied :data:`TRANSPOSE_FRAMES` frames at a time: one
    strided copy of the whole batch reads each source cache line once per lane it holds and misses the
    cache on every write row; by blocks the source block stays cached (64 × 501 × 128 uint8: 1.3 ms
    instead of 2.6 ms here). Narrow frames (stereo int16) are faster in one copy."""
    frames = src.shape[1]
    if src.shape[2] * src.itemsize < WIDE_FRAME_BYTES or frames <= TRANSPOSE_FRAMES:
        np.copyto(dst, src.transpose(0, 2, 1))
        return
    for k in range(0, frames, TRANSPOSE_FRAMES):
        np.copyto(dst[:, :, k:k + TRANSPOSE_FRAMES], src[:, k:k + TRANSPOSE_FRAMES, :].transpose(0, 2, 1))
