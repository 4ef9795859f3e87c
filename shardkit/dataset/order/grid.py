"""``crops="grid"``: every consecutive window of every sample once, in order, every epoch (evaluation
over whole recordings, e.g. 5 s windows of soundscapes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shardkit.dataset.order.shuffle import OrderSpec, window_bounds
from shardkit.errors import UsageError

#: ``crops="grid"``: the last, partial window of a sample
GRID_TAILS = ("pad", "drop")


def grid_windows(frames: np.ndarray, step: float, tail: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every consecutive window of ``step`` frames (a window may span a fractional number of stored frames:
    a log-mel's hop need not divide it) of every sample, in sample order: (samples int64 (M,), first frames
    int64 (M,): ``round(k × step)``, window numbers k int64 (M,) within the sample). ``tail``: ``"pad"`` keeps
    a last window that runs past the sample's end (a reader zero-pads it; a sample shorter than one window
    gives one), ``"drop"`` leaves it out."""
    if tail not in GRID_TAILS:
        raise UsageError(f"tail must be one of {GRID_TAILS}, got {tail!r}")
    if not step >= 1:
        raise UsageError(f"a grid window must hold at least one frame, got {step}")
    frames = np.asarray(frames, dtype=np.int64)
    exact = frames / float(step)
    counts = (np.ceil(exact - 1e-9) if tail == "pad" else np.floor(exact + 1e-9)).astype(np.int64)
    total = int(counts.sum())
    samples = np.repeat(np.arange(len(frames), dtype=np.int64), counts)
    first = np.zeros(len(frames) + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    k = np.arange(total, dtype=np.int64) - first[:-1][samples]
    return samples, np.round(k * float(step)).astype(np.int64), k


def set_grid(ss: object, crop_seconds: float, tail: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`grid_windows` of every sample of shard set ``ss``, windows of ``crop_seconds`` (at least one stored
    frame): what ``crops="grid"`` reads (the batch reader and the dry run, :func:`shardkit.plan_split`)."""
    step = max(1.0, float(crop_seconds) / ss.seconds_per_frame)  # type: ignore[attr-defined]
    return grid_windows(ss.frames, step, tail)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class GridOrder:
    """The epochs of ``crops="grid"``: every window (:func:`grid_windows`) once, in order, every epoch. The
    sampler a :class:`~shardkit.ShardDataset` asks for its order (as :class:`~.sampling.EpochSampler`)."""

    num_items: int
    #: window bounds of the read-ahead (:func:`~.shuffle.window_bounds` of the samples, as positions of windows)
    bounds: np.ndarray
    drawn: bool = False

    @property
    def set_items(self) -> int:
        return self.num_items

    @classmethod
    def of(cls, ss: object, samples: np.ndarray, window_bytes: int, recipe: object) -> GridOrder:
        """The grid of the windows of ``samples`` int64 (M,) (their sample rows) of shard set ``ss``;
        :class:`UsageError` for a recipe (subsets and weights of grid windows are not there yet)."""
        if any(getattr(recipe, k, None) is not None for k in ("keys", "where", "weights", "samples_per_epoch")):
            raise UsageError("crops='grid' reads every window of every sample: keys=, where=, weights= and "
                             "samples_per_epoch= do not combine with it (yet); evaluate a subset as its own set")
        by_sample = window_bounds(OrderSpec(ss.shard_ptr, ss.sample_bytes,  # type: ignore[attr-defined]
                                            seed=0, epoch=0, shuffle=False, window_bytes=window_bytes))
        first = np.searchsorted(samples, np.arange(len(ss) + 1), side="left")  # type: ignore[arg-type]
        return cls(num_items=len(samples), bounds=first[by_sample])

    def order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(every window's position, in order; the read-ahead's window bounds): the same every epoch."""
        return np.arange(self.num_items, dtype=np.int64), self.bounds

    def recipe(self) -> str:
        """Checkpoints of a grid read are not those of crops (the items are windows)."""
        return "grid"
