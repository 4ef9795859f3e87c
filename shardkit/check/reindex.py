"""``reindex``: rebuild a shard's index from the shard itself (docs/format.md §4).

A shard holds everything its index says: the tar headers give every key, offset and size; the
manifest's codec gives the frames (:meth:`~shardkit.encode.Codec.frames_in_member`: a frame codec from
the data member's size, a whole-member codec from the metadata); the ``KEY.mp`` members give the labels (as
numbers into the manifest's vocabulary), source, start and the codec's own columns; the CRC-32s are
computed. The writer's encoding is deterministic, so a rebuilt index is byte-identical to the one the
pack wrote. The shard must first pass its sha256 against the manifest: an index is never rebuilt from
a shard that is not the one the manifest describes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shardkit import format as fmt
from shardkit.check.tarscan import Member, scan_tar
from shardkit.check.verify import hashed, read_chunks
from shardkit.encode import meta as meta_codec
from shardkit.encode.base import Codec
from shardkit.errors import FormatError, IntegrityError, ShardIndexError, ShardkitError, UsageError
from shardkit.files import atomic_write
from shardkit.format import META_EXT, Manifest, ShardEntry, ShardIndex, checks
from shardkit.storage import location
from shardkit.storage.local import LocalStorage

log = logging.getLogger(__name__)


@dataclass
class ReindexResult:
    """What :func:`reindex` did: the indexes it wrote and those that already matched the manifest."""

    root: Path
    rebuilt: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def reindex(path: str | os.PathLike[str], *, force: bool = False) -> ReindexResult:
    """Rebuild every index of the local shard set at ``path`` (folder or manifest.json) that is missing,
    unreadable, differs from the manifest's sha256 or fails a reader's check (every index with
    ``force``); each is written crash-safely, then the manifest's ``index_bytes``/``index_sha256`` (and
    ``totals.bytes``) are updated. ``version_id`` is over the shards' sha256s and does not change.

    Raises :class:`~shardkit.errors.IntegrityError` when a shard fails its size or sha256 against the
    manifest (re-download or re-pack it), :class:`~shardkit.errors.FormatError` when its tar is not a
    valid shard, :class:`~shardkit.errors.ManifestError` when the manifest is unusable. Nothing is
    written for a shard it refuses; indexes rebuilt before it are kept (and listed in the manifest).
    """
    where, name = location.Location.of_set(path, fmt.MANIFEST_NAME)
    if not where.is_local:
        raise UsageError(f"{path}: reindex works on a local folder; download the shard set first")
    from shardkit.read.shardset import load_manifest, locate_set

    root, name, storage = locate_set(path, LocalStorage(where.path), None)
    doc = load_manifest(storage, name)
    result = ReindexResult(root.path)
    try:
        for n, rec in enumerate(doc.shards):
            if rec.origin is not None:  # an ancestor's shard (format §5.1): reindex that set instead
                result.kept.append(rec.index)
                continue
            if not force and _index_ok(storage, rec, doc):
                result.kept.append(rec.index)
                continue
            data = build_index(storage, rec, doc)
            atomic_write(root.path / rec.index, data)
            doc.shards[n] = dataclasses.replace(rec, index_bytes=len(data),
                                                index_sha256=hashlib.sha256(data).hexdigest())
            result.rebuilt.append(rec.index)
            log.info("rebuilt %s (%d samples)", rec.index, rec.samples)
            if doc.shards[n] != rec:  # after each index: a crash leaves the manifest matching what is on disk
                _save(doc, root.path, name)
    finally:
        storage.close()
    return result


def _save(doc: Manifest, root: Path, name: str) -> None:
    doc.totals["bytes"] = sum(s.bytes + s.index_bytes for s in doc.shards)
    atomic_write(root / name, doc.to_json())


def _index_ok(storage: LocalStorage, rec: ShardEntry, doc: Manifest) -> bool:
    """The index matches the manifest's size and sha256 and passes the reader's checks."""
    try:
        raw = storage.read_bytes(rec.index)
        if len(raw) != rec.index_bytes or hashlib.sha256(raw).hexdigest() != rec.index_sha256:
            return False
        idx = ShardIndex.from_bytes(raw, storage.describe(rec.index))
        size = storage.size(rec.name)
    except (ShardkitError, OSError):
        return False
    if checks.index_findings(idx, rec, doc.vocabulary, doc.codec) or idx.shard_bytes != size:
        return False
    return not checks.extent_findings(idx, rec.index, size, doc.codec) and not checks.set_findings(
        [idx], [rec.index], len(doc.vocabulary))


def build_index(storage: LocalStorage, rec: ShardEntry, doc: Manifest) -> bytes:
    """The index bytes of shard ``rec``, rebuilt from its tar (see the module docstring)."""
    where = storage.describe(rec.name)
    try:
        size = storage.size(rec.name)
    except FileNotFoundError:
        raise IntegrityError(f"{where}: shard is missing; its index cannot be rebuilt. Re-download or re-pack "
                             "the shard set") from None
    sha = hashlib.sha256()
    scan = scan_tar(hashed(read_chunks(storage, rec.name, size), sha, None),
                    keep=lambda member: member.endswith("." + META_EXT))
    if size != rec.bytes or sha.hexdigest() != rec.sha256:
        raise IntegrityError(f"{where}: shard fails its size or sha256 against the manifest, so its index cannot "
                             "be rebuilt from it; re-download or re-pack the shard set")
    if scan.problems:
        offset, member, what = scan.problems[0]
        raise FormatError(f"{where}: {member + ': ' if member else ''}{what} (offset {offset}); the tar is not a "
                          "shard an index can be rebuilt from. Re-download or re-pack the shard set")
    codec = doc.codec
    columns = _columns(scan.members, codec, doc.vocabulary, where)
    index = ShardIndex(shard=rec.name, shard_bytes=size, shard_sha256=rec.sha256, codec=codec.config(),
                       vocabulary=list(doc.vocabulary), columns=columns,
                       format_version=min(doc.format_version, fmt.FORMAT_VERSION))  # lineage keeps index v2
    return index.to_bytes()


def _columns(members: list[Member], codec: Codec, vocabulary: list[str], where: str) -> dict[str, list[Any]]:
    """The index columns of a shard whose members are ``members`` (data member, then ``.mp``, per sample)."""
    columns: dict[str, list[Any]] = {c: [] for c in ShardIndex.column_names(codec.config())}
    labels = {label: n for n, label in enumerate(vocabulary)}
    if len(members) % 2:
        raise FormatError(f"{where}: {len(members)} members, not a data member and a .{META_EXT} per sample")
    for data, meta in zip(members[::2], members[1::2], strict=True):
        key = data.name.rsplit(".", 1)[0]
        if data.name != f"{key}.{codec.ext}" or meta.name != f"{key}.{META_EXT}" or meta.data is None:
            raise FormatError(f"{where}: members {data.name!r} and {meta.name!r} are not a sample "
                              f"(KEY.{codec.ext} then KEY.{META_EXT})")
        try:
            doc = meta_codec.decode(meta.data)
            row = {"key": key, "wav_offset": data.offset, "wav_size": data.size, "meta_offset": meta.offset,
                   "meta_size": meta.size, "label": _label(doc["primary_label"], labels),
                   "secondary": [_label(s, labels) for s in doc["secondary_labels"]], "source": doc["source"],
                   "start": doc["start_frame"], "wav_crc32": data.crc32, "meta_crc32": meta.crc32,
                   **{name: doc[name] for name in codec.index_columns}}
        except (FormatError, KeyError, TypeError) as exc:
            raise ShardIndexError(f"{where}: sample {key!r}: its metadata cannot give its index row "
                                  f"({exc!r})") from None
        row["frames"] = _frames(codec, data.size, doc, where, key)
        for name, value in row.items():
            columns[name].append(value)
    return columns


def _frames(codec: Codec, size: int, doc: dict[str, Any], where: str, key: str) -> int:
    """The stored frames of a data member of ``size`` bytes, as the codec counts them (a frame codec from
    the size, a whole-member codec from the sample's metadata ``doc``)."""
    try:
        return codec.frames_in_member(size, doc)
    except FormatError as exc:
        raise FormatError(f"{where}: sample {key!r}: {exc}") from None


def _label(label: str | None, labels: dict[str, int]) -> int:
    if label is None:
        return -1
    if label not in labels:
        raise KeyError(f"label {label!r} is not in the manifest's vocabulary")
    return labels[label]
