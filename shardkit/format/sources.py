"""The sources table of a shard set (``sources.json``, format §5.2): per source file its size, sha256,
labels, other CSV columns and the sample keys it gave. ``shardkit update`` compares a folder of sources
against it; ``shardkit diff`` compares two sets by it.

``pack`` writes it when a pack completes (it hashes every packed source once more: ~1 GB/s per
thread, from the page cache when the pack just read them); ``update`` writes the new version's.
A version-3 manifest names it with its sha256; a version-2 set holds it beside the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from shardkit.errors import IntegrityError, UsageError
from shardkit.files import atomic_write
from shardkit.format import Manifest, ShardIndex

SOURCES_TABLE = "sources.json"
#: most bytes of a sources table read (a set may come from anyone)
MAX_TABLE_BYTES = 1 << 30
_CHUNK = 4 << 20

#: one source: {"bytes", "sha256", "row", "primary_label", "secondary_labels", "extra", "keys"}
Table = dict[str, dict[str, Any]]


class SourceItem(Protocol):
    """What the table records of one source (:class:`shardkit.ingest.sources.SourceItem` has these)."""

    path: str                      #: the audio file, to hash
    rel: str                       #: its path relative to the sources folder: the table's key
    row: int | None                #: 1-based data row of the metadata CSV
    primary_label: str | None
    secondary_labels: tuple[str, ...]
    extra: dict[str, Any]


def file_fingerprint(path: str | os.PathLike[str]) -> tuple[int, str]:
    """(size in bytes, hex sha256) of a file's bytes."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def fingerprints(paths: Sequence[str], threads: int | None = None) -> list[tuple[int, str]]:
    """:func:`file_fingerprint` of each path, hashed by a few threads (hashlib releases the GIL)."""
    n = threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max(1, n)) as pool:
        return list(pool.map(file_fingerprint, paths))


def record(item: SourceItem, fingerprint: tuple[int, str], keys: list[str]) -> dict[str, Any]:
    """The table's entry for ``item``."""
    return {"bytes": fingerprint[0], "sha256": fingerprint[1], "row": item.row,
            "primary_label": item.primary_label, "secondary_labels": list(item.secondary_labels),
            "extra": json.loads(json.dumps(item.extra, default=str)), "keys": list(keys)}


def labels_of(rec: dict[str, Any] | SourceItem) -> tuple[Any, list[str], dict[str, Any]]:
    """(primary label, secondary labels, extra columns) of a table entry or an item, comparable."""
    if not isinstance(rec, dict):
        return rec.primary_label, list(rec.secondary_labels), json.loads(json.dumps(rec.extra, default=str))
    return rec.get("primary_label"), list(rec.get("secondary_labels", [])), dict(rec.get("extra", {}))


def keys_by_source(indexes: Iterable[ShardIndex]) -> dict[str, list[str]]:
    """source → its sample keys, in tar order, over the given indexes."""
    out: dict[str, list[str]] = {}
    for ix in indexes:
        for key, source in zip(ix.columns["key"], ix.columns["source"], strict=True):
            out.setdefault(source, []).append(key)
    return out


def write_table(out: Path, table: Table) -> dict[str, Any]:
    """Write ``out/sources.json``; returns the manifest's reference to it ``{"name", "bytes", "sha256"}``."""
    doc = {"format": "shardkit.sources", "format_version": 1, "sources": {k: table[k] for k in sorted(table)}}
    data = (json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
    atomic_write(Path(out) / SOURCES_TABLE, data)
    return {"name": SOURCES_TABLE, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def load_table(root: str | os.PathLike[str], manifest: Manifest) -> Table:
    """The sources table of the set in ``root``: the file its (version-3) manifest names, checked by
    sha256, or a version-2 set's ``sources.json``. :class:`UsageError` when there is none."""
    ref = manifest.sources or {"name": SOURCES_TABLE}
    path = Path(root) / str(ref["name"])
    from shardkit.storage.safe_open import read_regular

    try:
        data = read_regular(path.parent, path.name, MAX_TABLE_BYTES)  # a regular file, size-capped
    except FileNotFoundError:
        raise UsageError(f"{path}: no sources table, so update cannot tell which sources changed; the set was "
                         "packed by an older shardkit or written by ShardSetWriter. Pack the sources once with "
                         "this 'shardkit pack' and update that set from then on") from None
    return parse_table(data, ref, str(path))


def parse_table(data: bytes, ref: dict[str, Any], where: str) -> Table:
    """The sources table in ``data``, checked against the manifest's reference ``ref`` (its sha256, when
    it names one); :class:`IntegrityError` naming ``where`` for a changed or unreadable table."""
    if "sha256" in ref and hashlib.sha256(data).hexdigest() != ref["sha256"]:
        raise IntegrityError(f"{where}: sha256 differs from the manifest's; re-download the shard set")
    try:
        doc = json.loads(data)
        table = doc["sources"]
        if doc.get("format") != "shardkit.sources" or not isinstance(table, dict):
            raise ValueError("not a sources table")
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{where}: unreadable sources table ({exc}); re-download the shard set") from None
    return table


def record_pack(out: Path, items: Sequence[SourceItem], manifest: Manifest,
                read_index: Callable[[str], bytes] | None = None) -> dict[str, Any]:
    """Write the sources table of a finished pack into ``out`` (called by :func:`shardkit.pack`; a pack
    into object storage passes ``read_index`` to read the indexes already uploaded). Returns the
    reference of :func:`write_table`."""
    if read_index is None:
        indexes = (ShardIndex.load(Path(out) / e.index) for e in manifest.shards)
    else:
        indexes = (ShardIndex.from_bytes(read_index(e.index), e.index) for e in manifest.shards)
    by_source = keys_by_source(indexes)
    packed = [it for it in items if it.rel in by_source]
    prints = fingerprints([it.path for it in packed])
    return write_table(out, {it.rel: record(it, fp, by_source[it.rel])
                             for it, fp in zip(packed, prints, strict=True)})
