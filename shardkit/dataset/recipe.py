"""The recipe options of a :class:`~shardkit.ShardDataset`: which samples an epoch reads, and how often.

``keys=`` / ``where=`` choose a subset at read time (:func:`shardkit.read.columns.select_rows`);
``weights=`` / ``samples_per_epoch=`` draw each epoch by weight (:mod:`.order.sampling`). :func:`make_sampler`
turns them into the :class:`~.order.sampling.EpochSampler` the dataset asks for each epoch's order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shardkit.dataset.options import ReadOptions
from shardkit.dataset.order.grid import GridOrder, set_grid
from shardkit.dataset.order.sampling import EpochSampler, check_weights, label_weights
from shardkit.errors import UsageError
from shardkit.read.columns import Columns, Where, sample_columns, select_rows
from shardkit.read.shardset import ShardSet

#: ``weights=``: "balanced", a power p (weight ∝ count(primary_label)^-p), per-sample weights, or a
#: function of the columns returning them
Weights = str | float | np.ndarray | Iterable[float] | Callable[[Columns], Any]


@dataclass(frozen=True)
class Recipe:
    """``keys``, ``where``, ``weights``, ``samples_per_epoch`` of a :class:`~shardkit.ShardDataset` (see there)."""

    keys: Iterable[str] | str | os.PathLike[str] | None = None
    where: Where | None = None
    weights: Weights | None = None
    samples_per_epoch: int | None = None

    @property
    def needs_columns(self) -> bool:
        return self.where is not None or callable(self.weights)


def epoch_sampler(ss: ShardSet, opts: ReadOptions, recipe: Recipe,
                  grid_samples: np.ndarray | None = None) -> EpochSampler | GridOrder:
    """Which items each epoch of ``ss`` read with ``opts`` and ``recipe`` holds, in which order: with
    ``crops="grid"`` every window of every sample (:class:`GridOrder`; ``grid_samples``: the windows' sample rows
    when already made), else :func:`make_sampler`'s :class:`EpochSampler`. The one place
    :class:`~shardkit.ShardDataset` and its dry run (:func:`shardkit.plan_split`) get it from."""
    if opts.crops == "grid":
        samples = grid_samples if grid_samples is not None else set_grid(ss, opts.crop_seconds or 0, opts.tail)[0]
        return GridOrder.of(ss, samples, opts.window_bytes, recipe)
    return make_sampler(ss, opts, recipe)


def make_sampler(ss: ShardSet, opts: ReadOptions, recipe: Recipe) -> EpochSampler:
    """The :class:`EpochSampler` of ``ss`` read with ``opts`` and ``recipe``; raises :class:`UsageError`
    (or :class:`SampleNotFoundError` for unknown keys) naming what is wrong."""
    cols = sample_columns(ss) if recipe.needs_columns else None
    rows = select_rows(ss, recipe.keys, recipe.where, cols)
    weights = None if recipe.weights is None else resolve_weights(ss, recipe.weights, rows, cols)
    m = recipe.samples_per_epoch
    if m is not None and (isinstance(m, bool) or int(m) < 1):
        raise UsageError(f"samples_per_epoch must be a positive integer (items per epoch), got {m!r}")
    return EpochSampler(ss.shard_ptr, ss.sample_bytes, crops=opts.crops_per_recording, seed=opts.seed,
                        shuffle=opts.shuffle, window_bytes=opts.window_bytes, rows=rows, weights=weights,
                        samples_per_epoch=None if m is None else int(m))


def resolve_weights(ss: ShardSet, weights: Weights, rows: np.ndarray | None, cols: Columns | None) -> np.ndarray:
    """float64 per sample of the subset (``rows``, or the whole set) from any form of ``weights=``.

    "balanced" = power 1; a power p: count(primary label)^-p, counted within the subset (samples
    without a label form one class); an array: one weight per sample of the set, or per sample of the
    subset; a function: called with the set's columns, returns one weight per sample of the set.
    """
    n = len(ss) if rows is None else len(rows)
    label = ss.label if rows is None else ss.label[rows]
    if isinstance(weights, str):
        if weights != "balanced":
            raise UsageError(f"weights={weights!r}: the named weighting is 'balanced' (or pass a power, "
                             "an array, or a function of the columns)")
        return label_weights(label, 1.0)
    if isinstance(weights, bool):
        raise UsageError("weights must be 'balanced', a power, an array or a function, not a bool")
    if isinstance(weights, int | float):
        return label_weights(label, float(weights))
    if callable(weights):
        arr = np.asarray(weights(cols if cols is not None else sample_columns(ss)), dtype=np.float64)
        return check_weights(arr if rows is None or arr.shape != (len(ss),) else arr[rows], n)
    arr = np.asarray(list(weights) if not isinstance(weights, np.ndarray) else weights, dtype=np.float64)
    if rows is not None and arr.shape == (len(ss),):
        arr = arr[rows]
    return check_weights(arr, n)
