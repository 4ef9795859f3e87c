"""The dry run of a read (``shardkit plan``): what a :class:`~shardkit.ShardDataset` with the same options would
read — items per epoch after a subset, draws per epoch, batches and padding per DDP rank and DataLoader worker —
and what would go wrong, reading no audio and importing no torch.

:func:`plan_split` builds the epoch from the dataset's own pieces (:class:`~shardkit.dataset.options.ReadOptions`,
:func:`~shardkit.dataset.recipe.epoch_sampler`, :func:`~shardkit.dataset.targets.dataset_classes`) and splits it
with :func:`~shardkit.dataset.plan.describe_plan`, as ``ShardDataset.plan`` does: the numbers are the dataset's
and bad options raise the dataset's errors.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shardkit.dataset.options import ReadOptions
from shardkit.dataset.order.crops import crop_frames
from shardkit.dataset.plan import describe_plan, plan_warnings
from shardkit.dataset.recipe import Recipe, Weights, epoch_sampler
from shardkit.dataset.targets import dataset_classes
from shardkit.errors import UsageError
from shardkit.read.columns import Where
from shardkit.read.shardset import ShardSet


@dataclass(frozen=True)
class SplitPlan:
    """A dry run of one epoch of a :class:`~shardkit.ShardDataset` (:func:`plan_split`)."""

    items: int                       #: items per epoch over all ranks: the dataset's ``num_items`` (draws, if drawn)
    partial: str
    ranks: list[dict[str, Any]]      #: per rank: samples, batches, padded, worker_batches, warnings (describe_plan)
    warnings: list[str]
    batch_size: int = 64
    world_size: int = 1
    workers: int = 0
    set_samples: int = 0             #: samples in the shard set
    samples: int = 0                 #: samples the subset keeps (``keys=``/``where=``; all of them without)
    subset_items: int = 0            #: items of the subset: samples × crops_per_recording (``crops="grid"``: windows)
    drawn: bool = False              #: epochs are drawn (``weights=``/``samples_per_epoch=``), not every item once
    #: (fewest, most) items a sample of the subset gets per epoch, expected (drawn) or exact; None for grid windows
    per_sample: tuple[float, float] | None = None
    classes: int = 0                 #: classes of ``labels`` (and ``targets``)
    targets: str | None = None       #: the label layer of ``targets=``
    targets_samples: int | None = None  #: samples of the subset the layer has rows for (the rest: targets_mask False)

    @property
    def step(self) -> int:
        """Items per global step, ``world_size × batch_size``."""
        return self.world_size * self.batch_size


def plan_split(
    source: str | os.PathLike[str] | ShardSet,
    *,
    world_size: int = 1,
    workers: int = 0,
    batch_size: int = 64,
    crop_seconds: float | None = None,
    crops_per_recording: int = 1,
    shuffle: bool = True,
    seed: int = 0,
    shuffle_window: int | str = "256MB",
    partial: str | None = None,
    classes: Sequence[str] | None = None,
    keys: Iterable[str] | str | os.PathLike[str] | None = None,
    where: Where | None = None,
    weights: Weights | None = None,
    samples_per_epoch: int | None = None,
    crops: str = "random",
    tail: str = "pad",
    targets: str | None = None,
    targets_reduce: str = "mean",
    storage_options: dict[str, Any] | None = None,
    search_path: Sequence[str | os.PathLike[str]] | None = None,
) -> SplitPlan:
    """What an epoch of ``ShardDataset(source, world_size=…, **options)`` reads on each rank and DataLoader
    worker (``workers`` per rank; 0: the training process itself), for the same options as the dataset takes:
    the numbers are those of ``len(ds)`` and of the batches it yields, the same for every epoch and seed.

    The recipe options (docs/recipes.md) count: ``keys``/``where`` choose the subset, ``weights``/
    ``samples_per_epoch`` the draws per epoch, ``crops="grid"`` reads every window; ``targets`` names a label
    layer (docs/labels.md), whose coverage of the subset is reported. Raises what the dataset raises for bad
    options (:class:`UsageError`, :class:`SampleNotFoundError` for unknown keys, …). ``crop_seconds`` may be
    left out for a recordings set (the dataset needs it, the counts do not, except with ``crops="grid"``).
    """
    for name, value, least in (("world_size", world_size, 1), ("workers", workers, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
            raise UsageError(f"{name} must be an integer >= {least}, got {value!r}")
    opts = ReadOptions(batch_size=batch_size, crop_seconds=crop_seconds, crops_per_recording=crops_per_recording,
                       shuffle=shuffle, seed=seed, shuffle_window=shuffle_window, partial=partial,
                       classes=None if classes is None else tuple(classes), crops=crops, tail=tail, targets=targets,
                       targets_reduce=targets_reduce)
    ss = source if isinstance(source, ShardSet) else ShardSet.open(source, storage_options=storage_options,
                                                                    search_path=search_path)
    try:
        return _plan(ss, opts, Recipe(keys, where, weights, samples_per_epoch), int(world_size), int(workers))
    finally:
        if ss is not source:
            ss.close()


def _plan(ss: ShardSet, opts: ReadOptions, recipe: Recipe, world_size: int, workers: int) -> SplitPlan:
    """:func:`plan_split` of the opened set ``ss``."""
    if not (ss.mode == "recordings" and opts.crop_seconds is None):
        opts.check_layout(ss.mode, ss.root)
        crop_frames(ss, opts.crop_seconds)
    names, _, targets = dataset_classes(ss, opts.targets, opts.classes, opts.targets_reduce, opts.crop_seconds)
    sampler = epoch_sampler(ss, opts, recipe)
    rows = getattr(sampler, "rows", None)
    chosen = np.arange(len(ss), dtype=np.int64) if rows is None else rows
    grid = opts.crops == "grid"
    ranks = describe_plan(sampler.num_items, world_size=world_size, workers=max(1, workers),
                          batch_size=opts.batch_size, partial=opts.partial)
    p = SplitPlan(items=sampler.num_items, partial=opts.partial, ranks=ranks, warnings=plan_warnings(ranks),
                  batch_size=opts.batch_size, world_size=world_size, workers=workers, set_samples=len(ss),
                  samples=len(chosen), subset_items=sampler.num_items if grid else sampler.subset_items,
                  drawn=sampler.drawn, per_sample=None if grid else _per_sample(sampler),
                  classes=len(names), targets=opts.targets,
                  targets_samples=None if targets is None else int(targets.covers()[chosen].sum()))
    more = [w for w in recipe_warnings(p, recipe, getattr(sampler, "weights", None)) if w not in p.warnings]
    return dataclasses.replace(p, warnings=p.warnings + more)


def _per_sample(sampler: Any) -> tuple[float, float]:
    """(fewest, most) items a sample of the subset gets per epoch: crops_per_recording each for a plain epoch;
    ``m × w / Σw`` expected for drawn ones (systematic draws give each item the floor or ceiling of its share)."""
    if not sampler.drawn:
        return float(sampler.crops), float(sampler.crops)
    n = sampler.subset_items // max(sampler.crops, 1)
    w = sampler.weights if sampler.weights is not None else np.ones(n)
    share = sampler.num_items * np.asarray(w, dtype=np.float64) / float(np.sum(w))
    return (float(share.min()), float(share.max())) if n else (0.0, 0.0)


def recipe_warnings(p: SplitPlan, recipe: Recipe, weights: np.ndarray | None) -> list[str]:
    """What a recipe makes go wrong, beyond :func:`~shardkit.dataset.plan.describe_plan`'s warnings: a subset or
    an epoch smaller than one step, ``samples_per_epoch`` not a multiple of the step, samples never drawn, a label
    layer with no row for the subset."""
    out: list[str] = []
    step = f"one step ({p.world_size} rank(s) × batch_size {p.batch_size} = {p.step} items)"
    if (recipe.keys is not None or recipe.where is not None) and p.subset_items < p.step \
            and recipe.samples_per_epoch is None:
        out.append(f"keys=/where= keep {p.samples} of the set's {p.set_samples} samples ({p.subset_items} items), "
                   f"fewer than {step}: " + _short(p) + "; lower batch_size or widen the subset")
    if recipe.samples_per_epoch is not None and p.items % p.step:
        fill = {"pad": f"the last step is padded with {p.step - p.items % p.step} filler items",
                "drop": f"the last {p.items % p.step} draws are dropped",
                "keep": "the last step is split short across the ranks"}[p.partial]
        lo, hi = p.items // p.step * p.step, -(-p.items // p.step) * p.step
        out.append(f"samples_per_epoch={p.items} is not a multiple of {step}: {fill}; "
                   f"samples_per_epoch={' or '.join(str(m) for m in (lo, hi) if m)} fills every step")
    if weights is not None and (zero := int(np.count_nonzero(np.asarray(weights) == 0))):
        out.append(f"weights: {zero} of the {p.samples} samples read have weight 0 and are never drawn")
    if p.targets is not None and p.targets_samples == 0:
        out.append(f"label layer {p.targets!r} has no row for any of the {p.samples} samples read: every "
                   "targets_mask would be False (is it the layer of this set's version?)")
    return out


def _short(p: SplitPlan) -> str:
    """What a read of fewer items than one step does, by ``partial``."""
    if p.partial == "pad":
        return f"each rank reads one batch, {p.step - p.items} of the step's {p.step} rows padding"
    if p.partial == "drop":
        return "partial='drop' reads no batch at all"
    return "ranks get one short batch or none"
