"""``labels add / rm / ls``: label layers as versions that never rewrite audio (format §5.3, docs/labels.md).

:func:`add_labels` reads a table (:mod:`shardkit.versions.label_table`), matches every row to the set
(a sample by key; a source's time window; a segment by source and start), checks every value, and
writes NEW: the parent's shards referenced by name and sha256 (``origin``, format §5.1), the parent's
layers and sources table copied, the new layer file, and a version-4 manifest last. Nothing is written
when a row is refused (``on_error="raise"``, the default); ``on_error="skip"`` drops the bad rows and
counts them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shardkit.errors import MetadataError, OutputConflictError, UsageError
from shardkit.files import atomic_write
from shardkit.format import LAYERS_VERSION, LINEAGE_VERSION, MANIFEST_NAME, Manifest
from shardkit.format.layers import LAYER_PREFIX, LAYER_SUFFIX, Layer, LayerEntry, check_name, layer_file
from shardkit.read.shardset import ShardSet
from shardkit.versions.label_table import Problem, Table, from_arrays, read_table

log = logging.getLogger(__name__)
ON_ERROR = ("raise", "skip")
#: |start_seconds − w·hop| allowed for a window's start (a table's seconds are rounded)
START_TOLERANCE = 1e-3
#: problems named in a refusal or in a result
MAX_NAMED = 10


@dataclass
class LabelsResult:
    """What :func:`add_labels` / :func:`remove_labels` wrote."""

    out: Path
    version_id: str
    parent: str
    layers: list[LayerEntry]
    layer: LayerEntry | None = None       #: the layer added (None for ``rm``)
    rows: int = 0                          #: rows in the layer
    skipped: int = 0                       #: rows dropped by ``on_error="skip"``
    problems: list[str] = field(default_factory=list)  #: the first :data:`MAX_NAMED` of them
    bytes_written: int = 0                 #: layer files, sources table and manifest


def add_labels(
    set: str | os.PathLike[str],
    new: str | os.PathLike[str],
    *,
    name: str,
    table: str | os.PathLike[str] | Mapping[str, Sequence[Any]] | None = None,
    probs: Any = None,
    classes: Sequence[str] | None = None,
    keys: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    start_seconds: Any = None,
    window_seconds: float | None = None,
    hop_seconds: float | None = None,
    on_error: str = "raise",
    replace: bool = False,
    note: str = "",
    search_path: Sequence[str | os.PathLike[str]] | None = None,
) -> LabelsResult:
    """Write NEW: the set at ``set`` with the label layer ``name`` added (module docstring).

    The rows come from ``table`` (a CSV/Parquet path or a mapping of columns, see
    :mod:`~shardkit.versions.label_table`) or from arrays: ``probs`` float (N, C) with ``classes`` (C
    names) and ``keys`` (N) or ``sources`` (N) + ``start_seconds`` (N). Rows with ``source`` +
    ``start_seconds`` (or BirdCLEF ``row_id``s) make a *windows* layer when ``window_seconds`` is given
    (each row the window ``[start, start + window_seconds)`` of its source; starts on a grid of
    ``hop_seconds``, default ``window_seconds``); without it they name the segments of a segments set.
    ``row_id``s end at their second: start = end − window (``window_seconds``, else the set's segment
    length). Classes are matched by name to the set's vocabulary; other names extend it for the layer.
    ``replace``: an existing layer of that name is replaced (else that is an error). ``note`` goes into
    the history (default ``"labels add NAME"``). Raises :class:`MetadataError` naming the row and column
    of the first bad row (``on_error="raise"``); writes nothing then.
    """
    check_name(name)
    if on_error not in ON_ERROR:
        raise UsageError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if (table is None) == (probs is None):
        raise UsageError("pass table= (a CSV/Parquet file or a mapping of columns), or probs= with classes= and "
                         "keys= or sources=/start_seconds=")
    t = read_table(table) if table is not None else from_arrays(
        probs=probs, classes=classes or [], keys=keys, sources=sources, start_seconds=start_seconds)
    root = _local(set)
    with ShardSet.open(root, search_path=search_path) as ss:
        if any(e.name == name for e in ss.manifest.layers) and not replace:
            raise OutputConflictError(f"{root}: has a layer {name!r} already; pass replace=True (CLI --replace) "
                                      "or choose another name")
        layer, rows = match(t, ss, name, window_seconds, hop_seconds)
    layer, skipped = _refuse_or_drop(t, layer, rows, on_error)
    data = layer.to_bytes()
    entry = layer.entry(data, note)
    m = Manifest.load(root)
    layers = {e.name: e for e in m.layers if e.name != name}
    out = write_version(root, Path(new), m, {**layers, name: entry}, {name: data}, note or f"labels add {name}")
    out.layer, out.rows, out.skipped = entry, layer.rows, skipped
    out.problems = [t.message(p) for p in t.problems[:MAX_NAMED]]
    log.info("labels add %s → %s: layer %r, %d rows (%d skipped)", root, new, name, layer.rows, skipped)
    return out


def remove_labels(set: str | os.PathLike[str], new: str | os.PathLike[str], *, name: str, note: str = "",
                  search_path: Sequence[str | os.PathLike[str]] | None = None) -> LabelsResult:
    """Write NEW: the set at ``set`` without its layer ``name`` (its audio and other layers referenced or
    copied as :func:`add_labels` does). A set left without layers has the id of its layer-free content."""
    root = _local(set)
    m = Manifest.load(root)
    if not any(e.name == name for e in m.layers):
        have = ", ".join(e.name for e in m.layers) or "none"
        raise UsageError(f"{root}: has no label layer {name!r} (layers: {have})")
    with ShardSet.open(root, search_path=search_path):
        pass  # the set reads: its ancestors are where NEW will need them
    layers = {e.name: e for e in m.layers if e.name != name}
    return write_version(root, Path(new), m, layers, {}, note or f"labels rm {name}")


def list_labels(set: str | os.PathLike[str]) -> list[LayerEntry]:
    """The label layers of the set at ``set`` (a folder or manifest.json), in name order."""
    return list(Manifest.load(_local(set)).layers)


def _local(path: str | os.PathLike[str]) -> Path:
    from shardkit.storage.location import is_url

    if is_url(path):
        raise UsageError(f"{path}: label layers are added to a local shard set; download it first")
    from shardkit.format import manifest_root

    return manifest_root(path)


# -- matching rows to the set -----------------------------------------------------------------------


def match(t: Table, ss: ShardSet, name: str, window_seconds: float | None, hop_seconds: float | None
          ) -> tuple[Layer, np.ndarray]:
    """The layer of table ``t`` over ``ss`` and the table row (position) of each layer row: every row
    matched (bad ones added to ``t.problems``, their values kept as they are), classes in the layer's
    order (the set's vocabulary order, new names after, sorted). Raises :class:`UsageError` for options
    that do not suit the table or the set."""
    order = [c for c in ss.vocabulary if c in t.classes] + sorted(set(t.classes) - set(ss.vocabulary))
    values = t.values[:, [t.classes.index(c) for c in order]]
    _check_values(t, values, order)
    if t.keys is not None:
        if window_seconds is not None:
            raise UsageError(f"{t.where}: rows named by 'key' are samples; window_seconds is for source + "
                             "start_seconds (or row_id) rows")
        return _by_key(t, ss, name, order, values)
    if t.row_ids is not None:
        length = window_seconds if window_seconds is not None else _segment_seconds(ss, t)
        t.sources, t.starts = _from_row_ids(t, ss, length)
    if window_seconds is None:
        return _by_segment(t, ss, name, order, values)
    return _by_window(t, ss, name, order, values, float(window_seconds), float(hop_seconds or window_seconds))


def _check_values(t: Table, values: np.ndarray, classes: list[str]) -> None:
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    known = {(p.row, p.column) for p in t.problems}
    for i, j in np.argwhere(bad).tolist():
        if (int(t.rows[i]), classes[j]) not in known:
            v = values[i, j]
            what = "is NaN" if np.isnan(v) else "is infinite" if np.isinf(v) else f"{v:g} is outside [0, 1]"
            t.problems.append(Problem(int(t.rows[i]), classes[j], what))


def _by_key(t: Table, ss: ShardSet, name: str, classes: list[str], values: np.ndarray) -> tuple[Layer, np.ndarray]:
    rows = {k: i for i, k in enumerate(ss.keys)}
    for i, k in enumerate(t.keys or []):
        if k not in rows:
            t.problems.append(Problem(int(t.rows[i]), "key", f"{k!r:.60} names no sample of {ss.root}"))
    keys = list(t.keys or [])
    return _sample_layer(t, name, classes, values, keys)


def _sample_layer(t: Table, name: str, classes: list[str], values: np.ndarray, keys: list[str]
                  ) -> tuple[Layer, np.ndarray]:
    """A samples layer over ``keys`` (one per row; duplicates are problems), rows sorted by key."""
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k in first:
            t.problems.append(Problem(int(t.rows[i]), "", f"duplicates {t.row_word} {int(t.rows[first[k]])} "
                                                          f"(both name sample {k!r})"))
        else:
            first[k] = i
    order = sorted(first.values(), key=lambda i: keys[i])
    layer = Layer(name=name, kind="samples", classes=classes, values=values[order].astype(np.float16),
                  keys=[keys[i] for i in order])
    return layer, np.asarray(order, dtype=np.int64)


def _segment_seconds(ss: ShardSet, t: Table) -> float:
    if ss.mode != "segments":
        raise UsageError(f"{t.where}: {ss.root} holds whole recordings: pass window_seconds (CLI --window-seconds) "
                         "to say how long each row's window is")
    return float(ss.manifest.layout.get("segment_seconds", 5.0))


def _by_segment(t: Table, ss: ShardSet, name: str, classes: list[str], values: np.ndarray
                ) -> tuple[Layer, np.ndarray]:
    """source + start_seconds rows of a segments set: the segment starting there."""
    _segment_seconds(ss, t)
    source_of = {s: n for n, s in enumerate(ss.source_names)}
    at = {(int(s), int(f)): i for i, (s, f) in enumerate(zip(ss.source_id.tolist(), ss.start.tolist()))}
    keys = []
    for i, (src, start) in enumerate(zip(t.sources or [], t.starts if t.starts is not None else [])):
        row = at.get((source_of.get(src, -1), round(float(start) * ss.sample_rate))) if np.isfinite(start) else None
        if row is None:
            what = (f"{src!r:.80} is not a source of {ss.root}" if src not in source_of else
                    f"no segment of {src!r:.80} starts at {start:g} s")
            t.problems.append(Problem(int(t.rows[i]), "source" if src not in source_of else "start_seconds", what))
        keys.append(ss.keys[row] if row is not None else f"\0{i}")
    return _sample_layer(t, name, classes, values, keys)


def _from_row_ids(t: Table, ss: ShardSet, length: float) -> tuple[list[str], np.ndarray]:
    """(sources, starts) of BirdCLEF ``row_id``s ``<stem>_<end second>``."""
    stems: dict[str, list[str]] = {}
    for s in ss.source_names:
        stems.setdefault(posixpath.splitext(posixpath.basename(s))[0], []).append(s)
    sources, starts = [], np.full(len(t.row_ids or []), np.nan)
    for i, rid in enumerate(t.row_ids or []):
        stem, _, end = rid.rpartition("_")
        found = stems.get(stem, [])
        src = found[0] if len(found) == 1 else ""
        if not end.isdigit() or not stem:
            t.problems.append(Problem(int(t.rows[i]), "row_id", f"{rid!r:.80} is not <soundscape stem>_<end second>"))
        elif len(found) != 1:
            t.problems.append(Problem(int(t.rows[i]), "row_id", f"{stem!r:.80} is the stem of "
                                      f"{'no source' if not found else ', '.join(found[:3])} of {ss.root}"))
        else:
            starts[i] = int(end) - length
        sources.append(src)
    return sources, starts


def _by_window(t: Table, ss: ShardSet, name: str, classes: list[str], values: np.ndarray, window: float,
               hop: float) -> tuple[Layer, np.ndarray]:
    """source + start_seconds rows as windows ``[w·hop, w·hop + window)`` of each source."""
    if not (np.isfinite(window) and window > 0 and np.isfinite(hop) and hop > 0):
        raise UsageError(f"window_seconds and hop_seconds must be positive, got {window} and {hop}")
    ends = _source_ends(ss)
    src_no = {s: n for n, s in enumerate(ss.source_names)}
    win = np.full(len(t.rows), -1, dtype=np.int64)
    for i, (src, start) in enumerate(zip(t.sources or [], t.starts if t.starts is not None else [])):
        if src == "" and t.row_ids is not None:
            continue  # its row_id was refused already
        w = round(start / hop) if np.isfinite(start) else -1
        if src not in src_no:
            t.problems.append(Problem(int(t.rows[i]), "source", f"{src!r:.80} is not a source of {ss.root}"))
        elif w < 0 or abs(start - w * hop) > START_TOLERANCE:
            t.problems.append(Problem(int(t.rows[i]), "start_seconds", f"{start:g} s is not a window start: "
                                      f"windows start at multiples of the hop ({hop:g} s) from 0"))
        elif w * hop >= ends[src_no[src]]:
            t.problems.append(Problem(int(t.rows[i]), "start_seconds", f"{start:g} s is after the end of "
                                      f"{src!r:.80} ({ends[src_no[src]]:.3f} s)"))
        else:
            win[i] = w
    return _window_layer(t, ss, name, classes, values, win, window, hop)


def _source_ends(ss: ShardSet) -> np.ndarray:
    """float64 (sources,): the end in seconds of each source's stored audio (its last sample's end)."""
    ends = ss.start_seconds + ss.frames * ss.seconds_per_frame
    out = np.zeros(len(ss.source_names))
    np.maximum.at(out, ss.source_id, ends)
    return out


def _window_layer(t: Table, ss: ShardSet, name: str, classes: list[str], values: np.ndarray, win: np.ndarray,
                  window: float, hop: float) -> tuple[Layer, np.ndarray]:
    src_no = {s: n for n, s in enumerate(ss.source_names)}
    pairs: dict[tuple[int, int], int] = {}
    for i, src in enumerate(t.sources or []):
        if win[i] < 0:
            continue
        key = (src_no[src], int(win[i]))
        if key in pairs:
            t.problems.append(Problem(int(t.rows[i]), "", f"duplicates {t.row_word} {int(t.rows[pairs[key]])} "
                                      f"(both the window at {win[i] * hop:g} s of {src!r:.80})"))
        else:
            pairs[key] = i
    order = sorted(pairs)  # by source (the set's source names are sorted, so ids sort as names), then window
    src = np.asarray([s for s, _ in order], dtype=np.int64)
    used, counts = np.unique(src, return_counts=True)
    rows = np.asarray([pairs[k] for k in order], dtype=np.int64)
    layer = Layer(name=name, kind="windows", classes=classes, values=values[rows].astype(np.float16),
                  sources=[ss.source_names[s] for s in used.tolist()],
                  source_ptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                  window=np.asarray([w for _, w in order], dtype=np.int64), window_seconds=window, hop_seconds=hop)
    return layer, rows


def _refuse_or_drop(t: Table, layer: Layer, rows: np.ndarray, on_error: str) -> tuple[Layer, int]:
    """Raise for the first problem (``"raise"``), or drop the problem rows from ``layer`` (its rows come from
    table positions ``rows``) and count them."""
    if not t.problems:
        return layer, 0
    t.problems.sort(key=lambda p: p.row)
    bad_rows = {p.row for p in t.problems}
    if on_error == "raise":
        more = f" ({len(bad_rows) - 1} more rows are bad; CLI --on-error skip drops them)" if len(bad_rows) > 1 else ""
        raise MetadataError(f"{t.message(t.problems[0])}{more}; nothing was written")
    keep = ~np.isin(t.rows[rows], list(bad_rows))
    if not keep.any():
        raise MetadataError(f"{t.where}: every row is bad (first: {t.message(t.problems[0])}); nothing was written")
    for p in t.problems[:MAX_NAMED]:
        log.warning("skipping %s", t.message(p))
    return _subset(layer, keep), len(bad_rows)


def _subset(layer: Layer, keep: np.ndarray) -> Layer:
    if layer.kind == "samples":
        return dataclasses.replace(layer, values=layer.values[keep], keys=[k for k, y in zip(layer.keys, keep) if y])
    src = np.repeat(np.arange(len(layer.sources)), np.diff(layer.source_ptr))[keep]
    used = np.unique(src)
    counts = np.bincount(np.searchsorted(used, src), minlength=len(used))
    return dataclasses.replace(layer, values=layer.values[keep], window=layer.window[keep],
                               sources=[layer.sources[s] for s in used],
                               source_ptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


# -- writing the new version ------------------------------------------------------------------------


def carry_layers(old_root: Path, old: Manifest, new: Path, keys: set[str], sources: set[str]) -> list[LayerEntry]:
    """The layers of ``old`` for a new version of its audio (``shardkit update``): each layer's rows of the
    samples (``keys``) and sources (``sources``) whose audio did not change, written into ``new``. A layer
    left without rows is dropped (logged)."""
    out = []
    for entry in old.layers:
        blob = (old_root / entry.file).read_bytes()
        if hashlib.sha256(blob).hexdigest() != entry.sha256:
            raise UsageError(f"{old_root / entry.file}: sha256 differs from the manifest's; run 'shardkit verify "
                             f"{old_root}' and re-download the set")
        layer = Layer.from_bytes(blob, str(old_root / entry.file))
        if layer.kind == "samples":
            keep = np.asarray([k in keys for k in layer.keys], dtype=bool)
        else:
            keep = np.repeat([s in sources for s in layer.sources], np.diff(layer.source_ptr)).astype(bool)
        if not keep.any():
            log.warning("label layer %r: no row names a sample whose audio is unchanged; dropped", entry.name)
            continue
        if not keep.all():
            log.info("label layer %r: %d rows of removed or changed audio dropped", entry.name, int((~keep).sum()))
            layer = _subset(layer, keep)
            blob = layer.to_bytes()
        atomic_write(new / entry.file, blob)
        out.append(layer.entry(blob, entry.note))
    return out


def write_version(root: Path, new: Path, m: Manifest, layers: dict[str, LayerEntry], data: dict[str, bytes],
                  note: str) -> LabelsResult:
    """NEW (``new``): ``m``'s set (in ``root``) as a derived version with ``layers``: files of ``data``
    written, the other layers' files copied from ``root`` (checked by sha256), manifest last."""
    from shardkit.versions.update import MAX_HISTORY, history_entry

    _prepare(new, root)
    written = 0
    for entry in sorted(layers.values(), key=lambda e: e.name):
        blob = data.get(entry.name)
        if blob is None:
            blob = (root / entry.file).read_bytes()
            if hashlib.sha256(blob).hexdigest() != entry.sha256:
                raise UsageError(f"{root / entry.file}: sha256 differs from the manifest's; run 'shardkit verify "
                                 f"{root}' and re-download the set")
        atomic_write(new / entry.file, blob)
        written += len(blob)
    out = _derived(m, sorted(layers.values(), key=lambda e: e.name))
    out.sources, size = _copy_sources(root, new, m)
    out.version_id = out.content_id()
    history = list(m.history) or [history_entry(m, "")]
    out.history = [*history, {**history_entry(out, note), "layers": [e.name for e in out.layers]}][-MAX_HISTORY:]
    path = out.save(new)
    _check_found(new, out, root)
    return LabelsResult(out=new, version_id=out.version_id, parent=m.version_id, layers=list(out.layers),
                        bytes_written=written + size + path.stat().st_size)


def _check_found(new: Path, m: Manifest, root: Path) -> None:
    """Warn when NEW's readers will not find the shards it references (the parent not next to it)."""
    from shardkit.errors import ShardkitError
    from shardkit.read.lineage import resolve

    try:
        resolve(new, m)
    except ShardkitError:
        log.warning("%s: the shards it uses are in %s, which is not next to it: read it with search_path=[%r] "
                    "(CLI --search-path, env SHARDKIT_SEARCH_PATH) or move it beside that set", new, root,
                    str(root.parent))


def _derived(m: Manifest, layers: list[LayerEntry]) -> Manifest:
    """``m`` as its child: every shard referenced where it is (``origin``), overrides and totals kept."""
    shards = [dataclasses.replace(e, origin=e.origin or m.version_id) for e in m.shards]
    vocabularies = {e.origin: m.vocabularies.get(e.origin, m.vocabulary) for e in shards if e.origin}
    return dataclasses.replace(
        m, shards=shards, vocabularies=dict(sorted(vocabularies.items())), parent=m.version_id, layers=layers,
        format_version=LAYERS_VERSION if layers else LINEAGE_VERSION, version_id="", history=[],
        overrides=dict(m.overrides), where=MANIFEST_NAME)


def _copy_sources(root: Path, new: Path, m: Manifest) -> tuple[dict[str, Any], int]:
    """Copy the parent's sources table into NEW (``update`` and ``diff`` read it); ({} , 0) when it has none."""
    from shardkit.format.sources import SOURCES_TABLE

    name = str(m.sources.get("name", SOURCES_TABLE))
    try:
        blob = (root / name).read_bytes()
    except FileNotFoundError:
        return {}, 0
    if m.sources.get("sha256") not in (None, hashlib.sha256(blob).hexdigest()):
        raise UsageError(f"{root / name}: sha256 differs from the manifest's; re-download the set")
    atomic_write(new / SOURCES_TABLE, blob)
    return {"name": SOURCES_TABLE, "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}, len(blob)


def _prepare(new: Path, root: Path) -> None:
    """NEW is a new folder, or one that holds only what an interrupted run left (removed)."""
    if new.resolve() == root.resolve():
        raise UsageError(f"{new}: NEW must be another folder than the set (the set stays as it is)")
    if (new / MANIFEST_NAME).exists():
        raise OutputConflictError(f"{new}: holds a shard set already; choose a new folder for the version")
    if new.exists():
        from shardkit.write.state import is_shard_set_file

        names = os.listdir(new)
        ours = [n for n in names if is_shard_set_file(n) or (n.startswith(LAYER_PREFIX) and (
            n.endswith(LAYER_SUFFIX) or n.endswith(LAYER_SUFFIX + ".tmp")))]
        if len(ours) != len(names):
            raise OutputConflictError(f"{new}: holds other files; choose an empty folder for the new version")
        for n in ours:
            if not (new / n).is_file() or (new / n).is_symlink():
                raise OutputConflictError(f"{new / n}: is not a regular file; remove it or choose another folder")
            (new / n).unlink()
    new.mkdir(parents=True, exist_ok=True)


__all__ = ["LabelsResult", "add_labels", "layer_file", "list_labels", "remove_labels"]
