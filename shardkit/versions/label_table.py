"""Label tables, read strictly: the input of :func:`shardkit.add_labels` (docs/labels.md).

A table has identifying columns and one numeric column per class:

- ``key``: one row per sample of the set;
- ``source`` + ``start_seconds``: one row per time window of a source recording (``source`` as the set
  names it: the path relative to the pack's SRC), or per segment of a segments set;
- ``row_id``: the BirdCLEF submission format, ``<soundscape stem>_<end second>``, as it is.

Files: CSV (``.csv``, UTF-8) or Parquet (``.parquet``/``.pq``, through pyarrow). From Python: a mapping of
column name → sequence (a ``pandas.DataFrame`` works through ``dict(df)``), or arrays (:func:`from_arrays`).
Every cell of a class column must be a number; :class:`Table` keeps the numbers as float64 and each
row's number for messages (the 1-based data row of a file, the 0-based index of arrays).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shardkit.errors import MetadataError, UsageError

ID_COLUMNS = ("key", "source", "start_seconds", "row_id")


@dataclass
class Problem:
    """One bad row: its number, the column (or "") and what is wrong."""

    row: int
    column: str
    reason: str

    def describe(self, where: str, row_word: str) -> str:
        col = f", column {self.column!r}" if self.column else ""
        return f"{where}: {row_word} {self.row}{col}: {self.reason}"


@dataclass
class Table:
    """A label table read (module docstring): rows R, classes C."""

    where: str
    rows: np.ndarray                 #: int64 (R,): each row's number for messages
    row_word: str                    #: "row" (1-based data row of a file) or "index" (0-based, arrays)
    classes: list[str]
    values: np.ndarray               #: float64 (R, C)
    keys: list[str] | None = None
    sources: list[str] | None = None
    starts: np.ndarray | None = None  #: float64 (R,) seconds
    row_ids: list[str] | None = None
    problems: list[Problem] = field(default_factory=list)

    def message(self, p: Problem) -> str:
        return p.describe(self.where, self.row_word)


def read_table(table: str | os.PathLike[str] | Mapping[str, Sequence[Any]]) -> Table:
    """Read a CSV or Parquet file, or a mapping of columns (module docstring). Cells of class columns
    that are not numbers become :attr:`Table.problems` (NaN in :attr:`Table.values`); a table without
    identifying columns, with no class column or a repeated column is a :class:`MetadataError`."""
    if isinstance(table, Mapping):
        return _from_columns({str(k): list(v) for k, v in table.items()}, "<table>", "index", 0)
    path = Path(table)
    if not path.is_file():
        raise UsageError(f"{path}: no such label table (a CSV or Parquet file)")
    if path.suffix.lower() in (".parquet", ".pq"):
        return _from_columns(_parquet_columns(path), str(path), "row", 1)
    return _from_columns(_csv_columns(path), str(path), "row", 1)


def from_arrays(*, probs: Any, classes: Sequence[str], keys: Sequence[str] | None = None,
                sources: Sequence[str] | None = None, start_seconds: Any = None) -> Table:
    """A table from arrays: ``probs`` (N, C) with ``classes`` (C names) and either ``keys`` (N) or
    ``sources`` (N) + ``start_seconds`` (N)."""
    values = np.asarray(probs, dtype=np.float64)
    classes = [str(c) for c in classes]
    if values.ndim != 2 or values.shape[1] != len(classes):
        raise UsageError(f"probs must be (rows, classes) = (N, {len(classes)}), got shape {values.shape}")
    if (keys is None) == (sources is None) or (sources is None) != (start_seconds is None):
        raise UsageError("pass keys=, or sources= with start_seconds=, one entry per row of probs")
    cols: dict[str, Any] = {c: values[:, j] for j, c in enumerate(classes)}
    if len(cols) != len(classes):
        raise UsageError("classes has duplicate names")
    ids = {"key": keys} if keys is not None else {"source": sources, "start_seconds": start_seconds}
    for name, col in ids.items():
        if len(col) != len(values):  # type: ignore[arg-type]
            raise UsageError(f"{name} has {len(col)} entries, probs {len(values)} rows")  # type: ignore[arg-type]
        cols = {name: list(col), **cols}  # type: ignore[arg-type]
    return _from_columns(cols, "<arrays>", "index", 0)


def _csv_columns(path: Path) -> dict[str, Any]:
    """The columns of a CSV: through pyarrow's reader when it is installed (C++, threads: a BirdCLEF-sized
    table of 100k+ rows × 200 classes reads in seconds, not minutes), else Python's csv module."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return _csv_columns_python(path)
    strings = {c: pa.string() for c in ("key", "source", "row_id")}  # "0012" stays "0012"
    try:
        t = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=strings))
    except pa.ArrowInvalid as exc:
        raise MetadataError(f"{path}: not a readable CSV label table ({str(exc).splitlines()[0]})") from None
    return _arrow_columns(t, path)


def _csv_columns_python(path: Path) -> dict[str, list[Any]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise MetadataError(f"{path}: the label table is empty (no header row)")
            body = list(reader)
    except UnicodeDecodeError as exc:
        raise MetadataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 "
                            "CSV") from None
    except csv.Error as exc:
        raise MetadataError(f"{path}: not a readable CSV ({exc})") from None
    _check_header([h.strip() for h in header], path)
    for n, line in enumerate(body, start=1):
        if len(line) != len(header):
            raise MetadataError(f"{path}: row {n} has {len(line)} cells, the header {len(header)}")
    return {h.strip(): [line[j] for line in body] for j, h in enumerate(header)}


def _parquet_columns(path: Path) -> dict[str, list[Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(f"{path}: reading Parquet needs pyarrow (pip install 'shardkit[parquet]'), or "
                         "give the table as CSV") from None
    try:
        t = pq.read_table(path)
    except Exception as exc:  # pyarrow raises its own types for every kind of bad file
        raise MetadataError(f"{path}: not a readable Parquet file ({exc})") from None
    return _arrow_columns(t, path)


def _arrow_columns(t: Any, path: Path) -> dict[str, Any]:
    """A pyarrow table's columns: numbers as float64 arrays (nulls NaN), others as Python lists."""
    import pyarrow.types as pat

    _check_header(list(t.column_names), path)
    out: dict[str, Any] = {}
    for name in t.column_names:
        col = t.column(name)
        number = pat.is_integer(col.type) or pat.is_floating(col.type)
        out[name] = col.to_numpy(zero_copy_only=False).astype(np.float64) if number else col.to_pylist()
    return out


def _check_header(header: list[str], where: Any) -> None:
    seen = set()
    for h in header:
        if h in seen:
            raise MetadataError(f"{where}: column {h!r} appears twice in the header")
        seen.add(h)


def _from_columns(cols: dict[str, Any], where: str, row_word: str, first: int) -> Table:
    """Split identifying and class columns; parse the class columns (problems per bad cell)."""
    _check_header(list(cols), where)
    n = len(next(iter(cols.values()), []))
    if "key" in cols:
        ids = ["key"]
    elif "row_id" in cols:
        ids = ["row_id"]
    elif "source" in cols and "start_seconds" in cols:
        ids = ["source", "start_seconds"]
    else:
        raise MetadataError(f"{where}: the label table needs a 'key' column, 'source' and 'start_seconds' "
                            "columns, or a BirdCLEF 'row_id' column; it has " + ", ".join(map(repr, cols)))
    others = [c for c in ID_COLUMNS if c in cols and c not in ids]
    if others:
        raise MetadataError(f"{where}: columns {', '.join(map(repr, ids + others))} together: identify rows by "
                            f"{' + '.join(ids)} only (remove {', '.join(map(repr, others))})")
    classes = [c for c in cols if c not in ids]
    if not classes:
        raise MetadataError(f"{where}: the label table has no class column (one numeric column per class)")
    t = Table(where=where, rows=np.arange(first, first + n, dtype=np.int64), row_word=row_word, classes=classes,
              values=np.empty((n, len(classes)), dtype=np.float64))
    for j, c in enumerate(classes):
        t.values[:, j] = _numbers(cols[c], c, first, t.problems)
    if "key" in ids:
        t.keys = [_text(v) for v in cols["key"]]
    elif "row_id" in ids:
        t.row_ids = [_text(v) for v in cols["row_id"]]
    else:
        t.sources = [_text(v) for v in cols["source"]]
        t.starts = _numbers(cols["start_seconds"], "start_seconds", first, t.problems)
    return t


def _text(v: Any) -> str:
    return "" if v is None else str(v).strip()


def _numbers(column: Any, name: str, first: int, problems: list[Problem]) -> np.ndarray:
    """float64 (R,) of a column; a cell that is not a number adds a :class:`Problem` and gives NaN."""
    if isinstance(column, np.ndarray) and column.dtype.kind in "fiu":
        return column.astype(np.float64)
    try:
        return np.asarray(column, dtype=np.float64)  # str cells go through float(): " 0.5 " is 0.5
    except (ValueError, TypeError):
        pass
    out = np.full(len(column), np.nan)
    for i, v in enumerate(column):
        try:
            if isinstance(v, bool):
                raise TypeError
            out[i] = float(v.strip() if isinstance(v, str) else v)
        except (ValueError, TypeError):
            problems.append(Problem(first + i, name, f"{v!r:.40} is not a number"))
    return out
