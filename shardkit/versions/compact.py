"""``compact``: a self-contained copy of a shard set (no parent references, overrides applied).

Every live sample's data member is copied as it is stored (no decoding, no re-encoding); its ``.mp``
member gets the labels and columns of its relabel override and its index row the set's label
numbers. Samples are written in a fresh pack's order when the set records it (``pack.order``: by the
keyed hash of the source path, or by path; then by position in the source), so that the compacted
set of a chain holds the same samples, keys and shard layout as a fresh pack of the same sources.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shardkit.encode import meta as meta_codec
from shardkit.errors import FormatError, OutputConflictError, UsageError
from shardkit.files import atomic_write
from shardkit.format import LAYERS_VERSION, LINEAGE_VERSION, MANIFEST_NAME, PACK_STATE_NAME, Manifest
from shardkit.format.sources import load_table
from shardkit.read.shardset import ShardSet
from shardkit.write.shards import EncodedSample
from shardkit.write.shardset_writer import ShardSetWriter
from shardkit.write.state import PackState, clean_unfinished, open_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompactResult:
    """What :func:`compact` wrote."""

    out: Path
    version_id: str
    samples: int
    shards: int
    bytes: int
    already_complete: bool = False  #: ``out`` held this compact, finished: nothing was written


def _order(ss: ShardSet, metas: list[dict[str, Any]]) -> list[int]:
    """Rows in the order a fresh pack writes them (module docstring)."""
    how = ss.manifest.pack.get("order", "shuffled")

    def key(i: int) -> tuple[Any, ...]:
        src = str(metas[i].get("source", ""))
        head = hashlib.blake2b(src.encode(), digest_size=8, person=b"skorder").digest() if how == "shuffled" else b""
        return (head, src, int(metas[i].get("start_frame", 0)), ss.keys[i])

    return sorted(range(len(ss)), key=key)


def compact(path: str | os.PathLike[str], out: str | os.PathLike[str], *, shard_size: int | str | None = None,
            search_path: Sequence[str | os.PathLike[str]] | None = None, overwrite: bool = False) -> CompactResult:
    """Write the samples of the set at ``path`` (resolving its ancestors like the reader) into a new,
    self-contained set in ``out`` (``shard_size``: default the set's own). Returns a :class:`CompactResult`.

    Crash-safe like a pack: the shards finished before an interruption (Ctrl-C, SIGTERM, a crash) are
    recorded in ``pack-state.json``, and the same call again continues after them, to the bytes of an
    uninterrupted compact; called again once finished, it writes nothing (``already_complete``)."""
    out_dir = Path(out)
    with ShardSet.open(path, search_path=search_path) as ss:
        if out_dir.exists() and ss.root.is_local and out_dir.resolve() == ss.root.path.resolve():
            raise UsageError(f"{out_dir}: is the set itself; compact into another folder")
        size = shard_size if shard_size is not None else ss.manifest.pack.get("shard_size", "1GB")
        mark = f"compact of {ss.manifest.version_id}, shard_size {size}"
        state, done = _start(out_dir, mark, overwrite)
        if done is not None:
            return _result(out_dir, done, already_complete=True)
        metas = [ss.read_meta(i) for i in range(len(ss))]
        _current_rows(ss, metas)
        if state is None:
            state = PackState(mark, {**ss.manifest.pack, "compact_of": mark}, rejects=_rejects(ss))
        writer = ShardSetWriter(out_dir, codec=ss.codec, shard_size=size, vocabulary=ss.vocabulary,
                                layout=ss.manifest.layout, state=state)
        columns = ss.manifest.columns  # keep a version-4 set's column types
        writer.columns = (dict(columns), tuple(columns)) if columns is not None else ({}, ())
        state.save(out_dir)
        try:
            for i in _order(ss, metas)[state.samples:]:
                writer.add(_sample(ss, i, metas[i]))
        except BaseException:
            writer.abort()
            raise
        writer.state.sources_packed = len({md.get("source") for md in metas})
        m = writer.finish(sources=ss.manifest.totals.get("sources", writer.state.sources_packed))
        if ss.manifest.layers:
            m = _keep_layers(ss, m, out_dir)
        (out_dir / PACK_STATE_NAME).unlink(missing_ok=True)
    log.info("compact %s → %s: %d samples in %d shards", path, out_dir, m.samples, len(m.shards))
    return _result(out_dir, m)


def _start(out: Path, mark: str, overwrite: bool) -> tuple[PackState | None, Manifest | None]:
    """(the state of an interrupted compact ``mark`` in ``out`` to continue, or None to start), or the
    manifest of that compact, finished; :class:`OutputConflictError` when ``out`` holds anything else."""
    if not overwrite and (out / MANIFEST_NAME).is_file() and not (out / PACK_STATE_NAME).exists():
        try:
            doc = Manifest.load(out)
        except FormatError as exc:
            raise OutputConflictError(f"{exc}; choose another folder or pass --overwrite to replace it") from None
        if doc.pack.get("compact_of") == mark:
            return None, doc
        raise OutputConflictError(f"{out}: holds another shard set, not a {mark}; choose another folder or "
                                  "pass --overwrite to replace it")
    state = open_state(out, mark, overwrite=overwrite, resume=None)
    if state is not None:
        clean_unfinished(out, len(state.shards))
    return state, None


def _rejects(ss: ShardSet) -> list[dict[str, Any]]:
    """The set's rejects: in its manifest, or (a local version-4 set) in its rejects file."""
    if ss.manifest.rejects or not ss.manifest.rejects_file or isinstance(ss.root, str):
        return list(ss.manifest.rejects)
    return Manifest.load(ss.root).rejects


def _result(out: Path, m: Manifest, *, already_complete: bool = False) -> CompactResult:
    return CompactResult(out=out, version_id=m.version_id, samples=m.samples, shards=len(m.shards),
                         bytes=m.totals["bytes"], already_complete=already_complete)


def _keep_layers(ss: ShardSet, m: Manifest, out: Path) -> Manifest:
    """Copy the set's label layers (format §5.3) into ``out`` and list them in its manifest, which becomes
    a version-4 manifest without a parent (the layers' rows name the same keys and sources)."""
    for entry in ss.manifest.layers:
        ss.read_layer(entry.name)  # checks the file against its entry
        atomic_write(out / entry.file, ss.storage.read_bytes(entry.file))
    m = dataclasses.replace(m, format_version=LAYERS_VERSION, layers=list(ss.manifest.layers), parent=None,
                            history=[], overrides={}, vocabularies={}, sources={})
    m.version_id = m.content_id()
    m.save(out)
    return m


def _current_rows(ss: ShardSet, metas: list[dict[str, Any]]) -> None:
    """Each sample's CSV ``row`` as the set's sources table has it (a reused sample's ``.mp`` holds the
    row of the version that packed it)."""
    if ss.manifest.format_version < LINEAGE_VERSION or not ss.root.is_local:
        return
    table = load_table(ss.root.path, ss.manifest)
    for md in metas:
        rec = table.get(str(md.get("source")))
        if rec is not None and "row" in md:
            md["row"] = rec["row"]


def _sample(ss: ShardSet, i: int, meta: dict[str, Any]) -> EncodedSample:
    """Sample ``i`` of ``ss`` as stored, ready to write again (its metadata with overrides applied)."""
    data = ss.read_data_member(i)
    raw = meta_codec.encode(meta)
    sec = tuple(int(j) for j in ss.sec_idx[ss.sec_ptr[i]:ss.sec_ptr[i + 1]])
    cols = tuple((name, _plain(col[i])) for name, col in ss.codec_columns.items())
    return EncodedSample(key=ss.keys[i], wav=data, meta=raw, frames=int(ss.frames[i]), label=int(ss.label[i]),
                         secondary=sec, source=str(meta.get("source", "")), start=int(meta.get("start_frame", 0)),
                         wav_crc32=zlib.crc32(data), meta_crc32=zlib.crc32(raw), ext=ss.codec.ext,
                         codec_columns=cols)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
