"""Cross-validation folds of a shard set, grouped and stratified: :func:`folds`, :func:`write_folds`,
:func:`load_folds`.

A fold is a pair of key lists ``(train, valid)``; the k validation parts are disjoint and cover the
(subset of the) set, a group (by default a source recording) never lies in two of them, and each
class is spread as evenly as its groups allow. The folds are a pure function of the set's columns,
``k`` and ``seed`` (a keyed blake2b hash, not numpy's generators: the same on every machine), so
nothing is repacked and no new version is made: train on ``ShardDataset(src, keys=fold.train)``.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from shardkit.errors import UsageError
from shardkit.files import atomic_write
from shardkit.read.columns import Where, sample_columns, select_rows
from shardkit.read.shardset import ShardSet, key_hashes

FOLDS_HEADER = ("key", "fold")


class Fold(NamedTuple):
    """One fold: the keys to train on and the keys to validate on (disjoint; set row order)."""

    train: list[str]
    valid: list[str]


def assign_folds(group: np.ndarray, cls: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """The validation fold (int64 (n,), 0 … k−1) of each row, given its ``group`` and ``cls`` labels
    (any comparable values, (n,) each).

    Greedy, one group at a time: groups of rarer classes first, larger groups first within a class,
    each into the fold that holds fewest rows of its class (a group's class: its most common one),
    then fewest rows, ties broken by a hash of (seed, group). Groups of one row each give per-class
    counts within ±1 of even.
    """
    if int(k) < 2:
        raise UsageError(f"k must be at least 2, got {k}")
    g_names, g_of = np.unique(np.asarray(group, dtype=str), return_inverse=True)
    c_names, c_of = np.unique(np.asarray(cls, dtype=str), return_inverse=True)
    if len(g_names) < k:
        raise UsageError(f"{len(g_names)} groups cannot fill k={k} folds; lower k or group by something finer")
    hist = np.zeros((len(g_names), len(c_names)), dtype=np.int64)
    np.add.at(hist, (g_of, c_of), 1)
    size, main = hist.sum(axis=1), hist.argmax(axis=1)
    tie = key_hashes([f"{seed}\x00{name}" for name in g_names.tolist()])
    rarity = hist.sum(axis=0)[main]
    order = np.lexsort((tie, -size, main, rarity))
    per_class = np.zeros((k, len(c_names)), dtype=np.int64)
    total = np.zeros(k, dtype=np.int64)
    fold_of_group = np.empty(len(g_names), dtype=np.int64)
    rotate = (np.arange(k)[None, :] + (tie % np.uint64(k)).astype(np.int64)[:, None]) % k
    for g in order.tolist():
        f = int(np.lexsort((rotate[g], total, per_class[:, main[g]]))[0])
        fold_of_group[g] = f
        per_class[f] += hist[g]
        total[f] += size[g]
    return fold_of_group[g_of]


def fold_table(src: ShardSet | str | os.PathLike[str], k: int = 5, *, seed: int = 0,
               group: str | None = "source", stratify: str | None = "primary_label",
               keys: Iterable[str] | str | None = None, where: Where | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The keys (str (n,), set row order) of the set or its subset and the fold each validates in
    (int64 (n,)); see :func:`folds`."""
    ss = src if isinstance(src, ShardSet) else ShardSet.open(src)
    cols = sample_columns(ss)
    for name in (group, stratify):
        if name is not None and name not in cols:
            raise UsageError(f"{ss.root}: no column {name!r}; the columns are {', '.join(cols)}")
    rows = select_rows(ss, keys, where, cols)
    rows = np.arange(len(ss), dtype=np.int64) if rows is None else rows
    g = cols[group][rows] if group is not None else cols["key"][rows]
    c = cols[stratify][rows] if stratify is not None else np.zeros(len(rows), dtype=np.int64)
    return cols["key"][rows], assign_folds(g, c, k, seed)


def _fold_list(keys: np.ndarray, fold: np.ndarray, k: int) -> list[Fold]:
    return [Fold(keys[fold != f].tolist(), keys[fold == f].tolist()) for f in range(int(k))]


def folds(src: ShardSet | str | os.PathLike[str], k: int = 5, *, seed: int = 0, group: str | None = "source",
          stratify: str | None = "primary_label", keys: Iterable[str] | str | None = None,
          where: Where | None = None) -> list[Fold]:
    """``k`` folds of the set at ``src`` (or of its subset ``keys``/``where``, as in
    :class:`~shardkit.ShardDataset`): a list of :class:`Fold` ``(train_keys, valid_keys)``.

    ``group``: a column (:func:`~shardkit.read.columns.sample_columns`) whose rows must stay in one
    fold (default the source recording, so segments of one recording never leak into validation);
    None: every sample alone. ``stratify``: a column whose classes are spread evenly (default the
    primary label); None: only sizes are balanced.
    """
    table = fold_table(src, k, seed=seed, group=group, stratify=stratify, keys=keys, where=where)
    return _fold_list(*table, k)


def folds_csv(keys: np.ndarray, fold: np.ndarray) -> bytes:
    """The CSV of :func:`write_folds`: ``key,fold`` (the fold a key validates in), one row per key."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(FOLDS_HEADER)
    w.writerows(zip(keys.tolist(), fold.tolist()))
    return out.getvalue().encode("utf-8")


def write_folds(src: ShardSet | str | os.PathLike[str], output: str | os.PathLike[str], k: int = 5, *,
                seed: int = 0, group: str | None = "source", stratify: str | None = "primary_label",
                keys: Iterable[str] | str | None = None, where: Where | None = None,
                force: bool = False) -> list[Fold]:
    """:func:`folds`, written to ``output`` as CSV ``key,fold`` (``shardkit folds SET -k 5 -o
    folds.csv``); returns them. Read back with :func:`load_folds`. An existing ``output`` needs
    ``force=True``; a folder, link or other non-regular file there is always refused; the file
    appears whole or not at all."""
    out = Path(output)
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise UsageError(f"{out}: exists and is not a regular file; choose another path")
    if out.exists() and not force:
        raise UsageError(f"{out}: exists; pass force=True (--force) to replace it")
    if not out.parent.is_dir():
        raise UsageError(f"{out}: the folder {out.parent} does not exist; create it or choose another path")
    table = fold_table(src, k, seed=seed, group=group, stratify=stratify, keys=keys, where=where)
    atomic_write(out, folds_csv(*table))
    return _fold_list(*table, k)


def load_folds(path: str | os.PathLike[str]) -> list[Fold]:
    """The folds of a :func:`write_folds` CSV, in fold order."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(header[:2]) != FOLDS_HEADER:
            raise UsageError(f"{path}: not a folds file (its first line must be 'key,fold'; made by 'shardkit folds')")
        pairs = []
        for n, row in enumerate(reader, start=2):
            if len(row) < 2 or not row[1].strip().isdigit():
                raise UsageError(f"{path}: line {n}: expected KEY,FOLD with FOLD a number, got {row!r}")
            pairs.append((row[0], int(row[1])))
    keys = np.asarray([key for key, _ in pairs], dtype=str)
    fold = np.asarray([f for _, f in pairs], dtype=np.int64)
    return _fold_list(keys, fold, int(fold.max(initial=-1)) + 1)
