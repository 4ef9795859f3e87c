"""The per-sample columns of a shard set, and subsets of it chosen by key or by a function of them.

:func:`sample_columns` builds one numpy array per column, one row per sample in the set's row order
(the rows of :class:`~shardkit.read.shardset.ShardSet`): the index's own columns and every column of
the metadata CSV the set was packed from (the sources table, docs/format.md §5.2), joined by source.
:func:`select_rows` turns ``keys=`` / ``where=`` (a function, or an expression as text: :mod:`.where`) into the
sorted rows of a subset. No torch, no audio
is read: the indexes are already in memory, the sources table is one small JSON file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from shardkit.errors import SampleNotFoundError, UsageError
from shardkit.format.sources import SOURCES_TABLE, parse_table
from shardkit.read.shardset import ShardSet
from shardkit.read.where import where_expression

log = logging.getLogger(__name__)

#: the columns every set has (the CSV's own columns come after them; a CSV column of one of these
#: names is left out, with a warning)
BASE_COLUMNS = ("key", "source", "start_seconds", "seconds", "primary_label", "secondary_labels")

Columns = dict[str, np.ndarray]
#: ``where=``: a function of the columns returning a bool mask (N,), or an expression over them as text
#: (:func:`shardkit.read.where.where_expression`: ``"rating >= 3 and primary_label != 'noise'"``)
Where = Callable[[Columns], Any] | str


def sample_columns(src: ShardSet | str | os.PathLike[str]) -> Columns:
    """The columns of every sample of a shard set, each an array of N rows (one type per column).

    - ``key``, ``source`` str (N,); ``start_seconds`` float64: where the sample starts in its
      source recording; ``seconds`` float64: its length;
    - ``primary_label`` str (N,) ("" for none); ``secondary_labels`` object (N,) of tuples of str;
    - every other column of the metadata CSV (the sources table, docs/format.md §5.2; a relabel of
      ``shardkit update`` applied): int64 for whole numbers, float64 for numbers (NaN where empty),
      bool, str ("" where empty), object of tuples of str for a list column (``type``; ``()`` where
      empty, as ``secondary_labels``), or object for anything else. A set without a sources table
      (written by :class:`~shardkit.ShardSetWriter`) has only the columns above.
    """
    ss = src if isinstance(src, ShardSet) else ShardSet.open(src)
    vocab = np.asarray([*ss.vocabulary, ""], dtype=str)
    cols: Columns = {
        "key": np.asarray(ss.keys, dtype=str),
        "source": np.asarray(ss.source, dtype=str),
        "start_seconds": ss.start.astype(np.float64) / ss.sample_rate,
        "seconds": ss.frames.astype(np.float64) * ss.seconds_per_frame,
        "primary_label": vocab[np.where(ss.label >= 0, ss.label, len(vocab) - 1)],
        "secondary_labels": _secondary(ss),
    }
    for name, values in _csv_columns(ss).items():
        if name in cols:
            log.warning("%s: the metadata column %r has the name of a built-in column; left out", ss.root, name)
            continue
        cols[name] = values
    return cols


def _secondary(ss: ShardSet) -> np.ndarray:
    out = np.empty(len(ss), dtype=object)
    names = ss.vocabulary
    for i in range(len(ss)):
        out[i] = tuple(names[j] for j in ss.sec_idx[ss.sec_ptr[i]:ss.sec_ptr[i + 1]].tolist())
    return out


def _sources_table(ss: ShardSet) -> dict[str, dict[str, Any]]:
    """The set's sources table (source → entry), or {} when it has none."""
    ref = ss.manifest.sources or {"name": SOURCES_TABLE}
    name = str(ref["name"])
    try:
        data = ss.storage.read_bytes(name)
    except FileNotFoundError:
        log.info("%s: no sources table; only the index columns are available", ss.root)
        return {}
    return parse_table(data, ref, ss.storage.describe(name))


def _csv_columns(ss: ShardSet) -> Columns:
    """The ``extra`` columns of the sources table, one per name, joined to the samples by source."""
    table = _sources_table(ss)
    if not table:
        return {}
    rows: list[dict[str, Any]] = []
    for key, source in zip(ss.keys, ss.source):
        extra = dict((table.get(source) or {}).get("extra") or {})
        relabel = ss.relabels.get(key)
        if relabel is not None and "extra" in relabel:
            extra = dict(relabel["extra"] or {})
        rows.append(extra)
    names: list[str] = []
    for extra in rows:
        names += [n for n in extra if n not in names]
    return {name: typed_column([extra.get(name) for extra in rows]) for name in names}


def typed_column(values: list[Any]) -> np.ndarray:
    """One type for a column of JSON values (None = empty): int64, float64 (NaN for empty), bool,
    str ("" for empty), object of tuples for lists of str (() for empty) or, for mixed or nested values,
    object."""
    present = [v for v in values if v is not None]
    kinds = {type(v) for v in present}
    if kinds == {list} and all(isinstance(x, str) for v in present for x in v):
        values = [tuple(v or ()) for v in values]
    if kinds and kinds <= {bool} and len(present) == len(values):
        return np.asarray(values, dtype=bool)
    if kinds and kinds <= {int, float}:
        if kinds == {int} and len(present) == len(values):
            return np.asarray(values, dtype=np.int64)
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    if kinds <= {str}:
        return np.asarray(["" if v is None else v for v in values], dtype=str)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):  # one by one: a slice assignment would spread lists over rows
        out[i] = v
    return out


def read_keys(keys: Iterable[str] | str | os.PathLike[str]) -> list[str]:
    """``keys=``: an iterable of sample keys, or a file of one key per line (blank lines and lines
    starting with ``#`` skipped)."""
    if isinstance(keys, str | os.PathLike):
        path = Path(keys)
        if not path.is_file():
            raise UsageError(f"keys={str(keys)!r}: no such file; pass a file of one key per line, or a list of keys")
        with open(path, encoding="utf-8") as fh:
            return [s for line in fh if (s := line.strip()) and not s.startswith("#")]
    return [str(k) for k in keys]


def select_rows(ss: ShardSet, keys: Iterable[str] | str | os.PathLike[str] | None = None,
                where: Where | None = None, columns: Columns | None = None) -> np.ndarray | None:
    """The rows (int64, ascending) of the samples that ``keys`` names and ``where`` keeps; None when
    neither is given (the whole set). ``columns``: :func:`sample_columns` of ``ss`` if already made.

    Raises :class:`SampleNotFoundError` for keys not in the set, :class:`UsageError` for a ``where``
    result that is not a bool mask of N rows, or a subset with no sample.
    """
    if keys is None and where is None:
        return None
    keep = np.ones(len(ss), dtype=bool)
    if keys is not None:
        wanted = read_keys(keys)
        got = np.isin(np.asarray(ss.keys, dtype=str), np.asarray(wanted, dtype=str))
        if int(got.sum()) != len(set(wanted)):
            missing = sorted(set(wanted) - set(np.asarray(ss.keys)[got].tolist()))
            raise SampleNotFoundError(f"{ss.root}: {len(missing)} of the keys= are not samples of the set "
                                      f"(e.g. {', '.join(map(repr, missing[:3]))}); keys look like {ss.keys[0]!r}"
                                      if ss.keys else f"{ss.root}: the shard set is empty")
        keep &= got
    if isinstance(where, str):
        where = where_expression(where)
    if where is not None:
        keep &= _mask(where(columns if columns is not None else sample_columns(ss)), len(ss))
    rows = np.flatnonzero(keep).astype(np.int64)
    if not len(rows):
        raise UsageError(f"{ss.root}: keys=/where= select no sample of the set's {len(ss)}")
    return rows


def _mask(mask: Any, n: int) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.dtype != np.bool_ or arr.shape != (n,):
        raise UsageError(f"where= must return a bool array of one entry per sample, shape ({n},); got "
                         f"{arr.dtype} {arr.shape} (compare columns, e.g. columns['rating'] >= 3)")
    return arr
