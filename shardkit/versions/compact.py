"""``compact``: a self-contained copy of a shard set (no parent references, overrides applied).

Every live sample's data member is copied as it is stored (no decoding, no re-encoding); its ``.mp``
member gets the labels and columns of its relabel override and its index row the set's label
numbers. Samples are written in a fresh pack's order when the set records it (``pack.order``: by the
keyed hash of the source path, or by path; then by position in the source), so that the compacted
set of a chain holds the same samples, keys and shard layout as a fresh pack of the same sources.
"""

from __future__ import annotations

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
from shardkit.errors import UsageError
from shardkit.format import LINEAGE_VERSION
from shardkit.format.sources import load_table
from shardkit.read.shardset import ShardSet
from shardkit.write.shards import EncodedSample
from shardkit.write.shardset_writer import ShardSetWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompactResult:
    """What :func:`compact` wrote."""

    out: Path
    version_id: str
    samples: int
    shards: int
    bytes: int


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
    self-contained set in ``out`` (``shard_size``: default the set's own). Returns a :class:`CompactResult`."""
    out_dir = Path(out)
    with ShardSet.open(path, search_path=search_path) as ss:
        if out_dir.exists() and out_dir.resolve() == Path(ss.root).resolve():
            raise UsageError(f"{out_dir}: is the set itself; compact into another folder")
        metas = [ss.read_meta(i) for i in range(len(ss))]
        _current_rows(ss, metas)
        size = shard_size if shard_size is not None else ss.manifest.pack.get("shard_size", "1GB")
        writer = ShardSetWriter(out_dir, codec=ss.codec, shard_size=size, vocabulary=ss.vocabulary,
                                layout=ss.manifest.layout, overwrite=overwrite)
        writer.state.pack = dict(ss.manifest.pack)
        writer.state.rejects = list(ss.manifest.rejects)
        try:
            for i in _order(ss, metas):
                writer.add(_sample(ss, i, metas[i]))
        except BaseException:
            writer.abort()
            raise
        writer.state.sources_packed = len({md.get("source") for md in metas})
        m = writer.finish(sources=ss.manifest.totals.get("sources", writer.state.sources_packed))
    log.info("compact %s → %s: %d samples in %d shards", path, out_dir, m.samples, len(m.shards))
    return CompactResult(out=out_dir, version_id=m.version_id, samples=m.samples, shards=len(m.shards),
                         bytes=m.totals["bytes"])


def _current_rows(ss: ShardSet, metas: list[dict[str, Any]]) -> None:
    """Each sample's CSV ``row`` as the set's sources table has it (a reused sample's ``.mp`` holds the
    row of the version that packed it)."""
    if ss.manifest.format_version < LINEAGE_VERSION or isinstance(ss.root, str):
        return
    table = load_table(ss.root, ss.manifest)
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
