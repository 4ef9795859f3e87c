"""``verify`` of a shard set on object storage: the same checks as for a folder (sizes and sha256 of
every shard and index against the manifest; damaged samples named by their CRC-32 and tar headers),
with shards streamed in ranged GETs of :data:`CHUNK` bytes, :data:`PARALLEL` at a time."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from shardkit.errors import FormatError, ManifestError
from shardkit.format import Manifest, ShardIndex
from shardkit.versions.verify import Problem, VerifyReport, locate_damage

log = logging.getLogger(__name__)

CHUNK = 8 * 1024 * 1024
PARALLEL = 4


def verify_remote(url: str, storage_options: dict[str, Any] | None,
                  progress: Callable[[int], None] | None) -> VerifyReport:
    """:func:`shardkit.verify` of the set at ``url``."""
    from shardkit.read import locate
    from shardkit.read.remote import ObjectStorage

    root, name = locate.split_url(url)
    storage = ObjectStorage(root, storage_options)
    storage.load_metadata(name)
    try:
        data = storage.read_bytes(name)
    except FileNotFoundError:
        raise ManifestError(f"{storage.describe(name)}: no manifest; is this a shard set made by "
                            "'shardkit pack'?") from None
    doc = Manifest.from_json(data, storage.describe(name))
    report = VerifyReport(root)  # type: ignore[arg-type]
    for rec in doc.shards:
        report.shards += 1
        report.samples += rec.samples
        idx = _check_index(storage, rec, report)
        try:
            size = storage.size(rec.name)
        except FileNotFoundError:
            report.problems.append(Problem(rec.name, None, "shard object is missing"))
            continue
        if size != rec.bytes:
            report.problems.append(Problem(rec.name, None,
                                           f"size is {size} bytes, the manifest says {rec.bytes} (truncated?)"))
        log.info("hashing %s (%d bytes)", storage.describe(rec.name), size)
        digest = _sha256(storage, rec.name, size, progress)
        report.bytes_checked += size
        if digest == rec.sha256:
            continue
        report.problems.append(Problem(rec.name, None, "sha256 differs from the manifest"))
        if idx is not None:
            report.problems.extend(locate_damage(rec.name, idx, lambda off, n, s=rec.name: _read(storage, s, off, n)))
    if report.problems:
        log.warning("verify %s: %d problems", root, len(report.problems))
    storage.close()
    return report


def _check_index(storage: Any, rec: Any, report: VerifyReport) -> ShardIndex | None:
    try:
        raw = storage.read_bytes(rec.index)
    except FileNotFoundError:
        report.problems.append(Problem(rec.index, None, "index object is missing"))
        return None
    if hashlib.sha256(raw).hexdigest() != rec.index_sha256:
        report.problems.append(Problem(rec.index, None, "sha256 differs from the manifest"))
    try:
        return ShardIndex.from_bytes(raw, storage.describe(rec.index))
    except FormatError as exc:
        report.problems.append(Problem(rec.index, None, f"unreadable: {exc}"))
        return None


def _sha256(storage: Any, name: str, size: int, progress: Callable[[int], None] | None) -> str:
    """sha256 of object ``name``, read in :data:`PARALLEL` concurrent ranged GETs per step."""
    h = hashlib.sha256()
    step = CHUNK * PARALLEL
    for start in range(0, size, step):
        bufs = [bytearray(min(CHUNK, size - off)) for off in range(start, min(start + step, size), CHUNK)]
        ranges = [(start + k * CHUNK, len(b), memoryview(b)) for k, b in enumerate(bufs)]
        errors = storage.read_into(name, ranges)
        if errors:
            raise errors[0][1]
        for b in bufs:
            h.update(b)
            if progress:
                progress(len(b))
    return h.hexdigest()


def _read(storage: Any, name: str, offset: int, size: int) -> bytes:
    buf = bytearray(size)
    errors = storage.read_into(name, [(offset, size, memoryview(buf))])
    if errors:
        got = getattr(errors[0][1], "got", 0)
        return bytes(buf[:got])
    return bytes(buf)
