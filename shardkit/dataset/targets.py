"""Targets from a label layer (format §5.3) for the items of a batch: ``ShardDataset(targets="NAME")``.

:class:`Targets` holds a layer's values (float16, only the columns the dataset's classes use) and, per
item, writes ``targets`` float32 (B, C) in the dataset's class order and ``targets_mask`` bool (B,):

- a *samples* layer gives each sample its row, whatever part of it a crop reads;
- a *windows* layer gives a crop the combination of the windows it overlaps, over the crop's real audio
  (source seconds ``[a, b)``, padding excluded): ``reduce="mean"`` weighs each window's row by its
  overlap with the crop (seconds), ``reduce="max"`` takes the class-wise maximum of the rows of windows
  it overlaps. Windows without a row take no part.

An item with no row (no row for its sample; no window with a row under its crop; a failed read) gets
zeros and ``targets_mask`` False: multiply the loss by it. (Zeros and a mask rather than NaN: a NaN
target silently turns a summed loss into NaN.) A class of the dataset the layer lacks is 0 with the
mask True (logged once at construction). Pure numpy, no I/O after construction.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import numpy as np

from shardkit.dataset.labels import map_classes
from shardkit.errors import UsageError
from shardkit.format.layers import Layer

log = logging.getLogger(__name__)
REDUCE = ("mean", "max")


class Targets:
    """Per-item targets of one layer over a shard set's samples, in ``classes`` order (module docstring).

    ``keys`` (N sample keys), ``source_id`` int (N,) into ``source_names``, ``start_seconds`` float64 (N,):
    the shard set's columns; ``crop_seconds``: the longest span a batch row covers (sizes the window
    arithmetic)."""

    def __init__(self, layer: Layer, classes: Sequence[str], *, keys: Sequence[str], source_id: np.ndarray,
                 source_names: Sequence[str], start_seconds: np.ndarray, reduce: str = "mean",
                 crop_seconds: float = 0.0, where: object = "") -> None:
        if reduce not in REDUCE:
            raise UsageError(f"targets_reduce must be one of {REDUCE}, got {reduce!r}")
        self.name, self.kind, self.reduce = layer.name, layer.kind, reduce
        self.n_classes = len(classes)
        col = {c: j for j, c in enumerate(layer.classes)}
        dst = [i for i, c in enumerate(classes) if c in col]
        # float32 in memory (the columns used only): a float16 → float32 gather per batch costs ~4x a float32 one
        used = [col[classes[i]] for i in dst]
        chosen = layer.values if used == list(range(len(layer.classes))) else layer.values[:, used]
        self.values = np.ascontiguousarray(chosen, dtype=np.float32)
        #: the dataset's columns of ``values`` (a slice where they are consecutive: a view, faster to write) and
        #: whether they are every class of the dataset, in order (no column left at 0)
        self.dst, self.whole = _columns(dst, self.n_classes)
        if not len(self.values):  # an empty layer: every row masked
            self.values = np.zeros((1, self.values.shape[1]), np.float32)
        _warn_classes(layer, classes, where)
        self.start_seconds = np.asarray(start_seconds, dtype=np.float64)
        if layer.kind == "samples":
            at = {k: r for r, k in enumerate(layer.keys)}
            self.row_of = np.asarray([at.get(k, -1) for k in keys], dtype=np.int64)
            if not (self.row_of >= 0).any():
                log.warning("%s: label layer %r names none of the set's samples", where, layer.name)
            return
        self.window, self.hop = float(layer.window_seconds or 0), float(layer.hop_seconds or 0)
        self._dense(layer, source_id, source_names)
        span = int(np.ceil((crop_seconds + self.window) / self.hop)) + 1
        #: window numbers a crop may overlap, after the first one before it
        self.steps = 1 + np.arange(span, dtype=np.int64)

    def covers(self) -> np.ndarray:
        """bool (N,) per sample of the set: whether the layer has rows for it (a samples layer: its row; a windows
        layer: windows of its source — a crop between them still gets ``targets_mask`` False)."""
        return self.row_of >= 0 if self.kind == "samples" else self.count > 0

    def joined(self, class_to: np.ndarray, n_classes: int) -> Targets:
        """These targets in another class list (a :class:`~shardkit.dataset.mixture.Mixture`'s joined one):
        ``class_to`` int64 (len(classes),) gives the new column of each of this dataset's classes (−1:
        dropped); the new list's classes that none maps to are 0 (the mask unchanged). Shares ``values``
        where no column is dropped."""
        to = np.asarray(class_to, dtype=np.int64)[np.arange(self.n_classes)[self.dst]]
        keep = to >= 0
        new = copy.copy(self)
        new.n_classes = int(n_classes)
        if not keep.all():
            new.values = np.ascontiguousarray(self.values[:, keep])
        new.dst, new.whole = _columns(to[keep].tolist(), new.n_classes)
        return new

    def _dense(self, layer: Layer, source_id: np.ndarray, source_names: Sequence[str]) -> None:
        """Each source's windows as a dense run of slots (``base``, ``count`` per sample; ``slot_row`` −1
        where a window has no row), so a batch's windows are found by arithmetic."""
        by_name = {s: n for n, s in enumerate(layer.sources)}
        ptr, win = layer.source_ptr, layer.window
        counts = np.asarray([int(win[ptr[n + 1] - 1]) + 1 if ptr[n + 1] > ptr[n] else 0
                             for n in range(len(layer.sources))], dtype=np.int64)
        base = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=base[1:])
        self.slot_row = np.full(int(base[-1]) + 1, -1, dtype=np.int64)  # + a −1 sentinel at the end
        src_of_row = np.repeat(np.arange(len(layer.sources)), np.diff(ptr))
        self.slot_row[base[:-1][src_of_row] + win] = np.arange(layer.rows)
        layer_src = np.asarray([by_name.get(s, -1) for s in source_names], dtype=np.int64)
        per_sample = layer_src[np.asarray(source_id, dtype=np.int64)] if len(layer_src) else np.zeros(0, np.int64)
        self.base = np.where(per_sample >= 0, base[:-1][np.maximum(per_sample, 0)], 0) if len(counts) else \
            np.zeros(len(per_sample), np.int64)
        self.count = np.where(per_sample >= 0, counts[np.maximum(per_sample, 0)], 0) if len(counts) else \
            np.zeros(len(per_sample), np.int64)
        if not (self.count > 0).any():
            log.warning("label layer %r names none of the set's sources", layer.name)

    def fill(self, samples: np.ndarray, begin: np.ndarray, seconds: np.ndarray, out: np.ndarray,
             mask: np.ndarray) -> None:
        """Write the targets of items reading ``samples`` int64 (B,) from ``begin`` float64 (B,) seconds
        into the sample for ``seconds`` float64 (B,) of real audio into ``out`` float32 (B, C) and
        ``mask`` bool (B,)."""
        if self.kind == "samples":
            rows = self.row_of[samples]
            mask[:] = rows >= 0
            res = np.where(mask[:, None], self.values[rows], 0.0)   # rows −1 (none): masked
        else:
            rows, overlap = self._windows(samples, begin, seconds)
            total = overlap.sum(axis=1)
            mask[:] = total > 0
            if not mask.any():
                out[:] = 0.0
                return
            vals = self.values[rows]                       # (B, span, K); rows −1 (none) have weight 0
            if self.reduce == "mean":
                weight = (overlap / np.where(mask, total, 1.0)[:, None]).astype(np.float32)
                res = np.matmul(weight[:, None, :], vals)[:, 0]
            else:
                res = np.where((overlap > 0)[:, :, None], vals, -np.inf).max(axis=1)
                res[~mask] = 0.0
        if not self.whole:
            out[:] = 0.0
        out[:, self.dst] = res

    def _windows(self, samples: np.ndarray, begin: np.ndarray, seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows int64 (B, span): the layer row of each window a crop may overlap, −1 for none; overlap
        float64 (B, span): seconds of the crop's audio in that window, 0 where it has no row)."""
        a = self.start_seconds[samples] + begin
        b = a + np.maximum(seconds, 0.0)
        w = np.floor((a - self.window) / self.hop).astype(np.int64)[:, None] + self.steps
        start = w * self.hop
        overlap = np.minimum(b[:, None], start + self.window) - np.maximum(a[:, None], start)
        slot = np.where((w >= 0) & (w < self.count[samples][:, None]), self.base[samples][:, None] + w, -1)
        rows = self.slot_row[slot]                         # slot −1: the trailing −1 sentinel
        overlap[(rows < 0) | (overlap < 0)] = 0.0
        return rows, overlap


class NoTargets:
    """The targets of a dataset without a label layer in a batch that has them (a
    :class:`~shardkit.dataset.mixture.Mixture` of parts with and without ``targets=``): every row 0, with
    ``targets_mask`` False."""

    name = None

    def __init__(self, n_classes: int) -> None:
        self.n_classes = int(n_classes)

    def fill(self, samples: np.ndarray, begin: np.ndarray, seconds: np.ndarray, out: np.ndarray,
             mask: np.ndarray) -> None:
        """:meth:`Targets.fill`: zeros and mask False for every row."""
        out[:] = 0.0
        mask[:] = False


def _columns(dst: list[int], n_classes: int) -> tuple[slice | np.ndarray, bool]:
    """(``dst`` as a slice where it is a run of consecutive columns, else int64; whether it is every one of
    ``n_classes`` columns in order)."""
    cols: slice | np.ndarray = (slice(dst[0], dst[-1] + 1) if dst and dst == list(range(dst[0], dst[-1] + 1))
                                else np.asarray(dst, dtype=np.int64))
    return cols, isinstance(cols, slice) and cols == slice(0, n_classes)


def _warn_classes(layer: Layer, classes: Sequence[str], where: object) -> None:
    """Log the layer's classes the dataset drops and the dataset's classes the layer lacks."""
    dropped = [c for c in layer.classes if c not in set(classes)]
    lacking = [c for c in classes if c not in set(layer.classes)]
    if dropped:
        log.warning("%s: %d classes of label layer %r are not among the dataset's classes (%s%s); their targets "
                    "are dropped", where, len(dropped), layer.name, ", ".join(dropped[:5]),
                    ", ..." * (len(dropped) > 5))
    if lacking:
        log.info("%s: %d of the dataset's classes are not in label layer %r; their targets are 0", where,
                 len(lacking), layer.name)


def dataset_targets(ss: object, name: str | None, classes: Sequence[str] | None, reduce: str,
                    crop_seconds: float | None) -> tuple[list[str] | None, object]:
    """For a :class:`~shardkit.read.ShardDataset` over ``ss`` with ``targets=name``: (the classes to
    train on — ``classes``, else the set's vocabulary extended by the layer's other names —, a function
    of those classes giving the :class:`Targets`). ``name`` None: (``classes``, None)."""
    if name is None:
        return (None if classes is None else list(classes)), None
    layer = ss.read_layer(name)  # type: ignore[attr-defined]
    vocabulary = list(ss.vocabulary)  # type: ignore[attr-defined]
    wanted = list(classes) if classes is not None else vocabulary + [c for c in layer.classes if c not in vocabulary]
    span = float(crop_seconds) if crop_seconds is not None else float(
        (ss.frames.max(initial=0)) * ss.seconds_per_frame)  # type: ignore[attr-defined]

    def make(final: Sequence[str]) -> Targets:
        return Targets(layer, final, keys=ss.keys, source_id=ss.source_id,  # type: ignore[attr-defined]
                       source_names=ss.source_names, start_seconds=ss.start_seconds,  # type: ignore[attr-defined]
                       reduce=reduce, crop_seconds=span, where=ss.root)  # type: ignore[attr-defined]

    return wanted, make


def dataset_classes(ss: object, name: str | None, classes: Sequence[str] | None, reduce: str,
                    crop_seconds: float | None) -> tuple[list[str], np.ndarray, Targets | None]:
    """The classes a :class:`~shardkit.ShardDataset` over ``ss`` trains on, ``class_of`` (each vocabulary label's
    class, :func:`~shardkit.dataset.labels.map_classes`) and its :class:`Targets` (None without ``targets=``):
    the one place the dataset and its dry run (:func:`shardkit.plan_split`) get them from."""
    wanted, make = dataset_targets(ss, name, classes, reduce, crop_seconds)
    final, class_of = map_classes(ss.vocabulary, ss.label, ss.sec_idx, wanted, ss.root)  # type: ignore[attr-defined]
    return final, class_of, (make(final) if make is not None else None)  # type: ignore[operator]
