"""``verify``: check a shard set against its manifest — sizes and sha256 of every shard and index,
and, where a shard's hash is off, which samples are damaged (per-member CRC-32 and tar headers)."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shardkit.encode.registry import get_codec
from shardkit.errors import FormatError
from shardkit.format import META_EXT, TAR_BLOCK, Manifest, ShardIndex, is_shard_name, manifest_root

logger = logging.getLogger(__name__)
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class Problem:
    """One thing wrong: the file, the sample key where known, and what."""

    file: str
    key: str | None
    what: str

    def __str__(self) -> str:
        return f"{self.file}{' [' + self.key + ']' if self.key else ''}: {self.what}"


@dataclass
class VerifyReport:
    """Result of :func:`verify`; ``ok`` is True when no problem was found."""

    root: Path
    shards: int = 0
    samples: int = 0
    bytes_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _sha256(path: Path, progress: Callable[[int], None] | None) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            n += len(chunk)
            if progress:
                progress(len(chunk))
    return h.hexdigest(), n


def verify(path: str | os.PathLike[str], *, progress: Callable[[int], None] | None = None,
           storage_options: dict[str, Any] | None = None) -> VerifyReport:
    """Check every shard and index of the shard set at ``path`` (folder or manifest.json, or an
    object-store URL: ``s3://bucket/prefix/``, … with ``storage_options``).

    ``progress`` is called with the number of bytes hashed after each chunk. Returns a report
    listing every problem found; raises only when the manifest itself is unusable (or, for a URL,
    the storage cannot be reached: :class:`~shardkit.errors.StorageError`).
    """
    from shardkit.read import locate

    if locate.is_url(path):
        from shardkit.versions.verify_remote import verify_remote

        return verify_remote(str(path), storage_options, progress)
    doc = Manifest.load(path)
    root = manifest_root(path)
    report = VerifyReport(root)
    listed = set()
    for rec in doc.shards:
        report.shards += 1
        report.samples += rec.samples
        shard, index = root / rec.name, root / rec.index
        listed.add(rec.name)
        # index first: it tells where the samples are, to name the damaged ones
        idx = None
        if not index.is_file():
            report.problems.append(Problem(rec.index, None, "index file is missing"))
        else:
            digest, _ = _sha256(index, None)
            if digest != rec.index_sha256:
                report.problems.append(Problem(rec.index, None, "sha256 differs from the manifest"))
            try:
                idx = ShardIndex.load(index)
            except FormatError as exc:
                report.problems.append(Problem(rec.index, None, f"unreadable: {exc}"))
        if not shard.is_file():
            report.problems.append(Problem(rec.name, None, "shard file is missing"))
            continue
        size = shard.stat().st_size
        if size != rec.bytes:
            report.problems.append(Problem(rec.name, None,
                                           f"size is {size} bytes, the manifest says {rec.bytes} (truncated?)"))
        digest, n = _sha256(shard, progress)
        report.bytes_checked += n
        if digest == rec.sha256:
            continue
        report.problems.append(Problem(rec.name, None, "sha256 differs from the manifest"))
        if idx is not None:
            with open(shard, "rb") as fh:
                report.problems.extend(locate_damage(shard.name, idx, functools.partial(_pread, fh)))
    for name in sorted(os.listdir(root)):
        if is_shard_name(name) and name not in listed:
            report.problems.append(Problem(name, None, "shard is not listed in the manifest"))
    if report.problems:
        logger.warning("verify %s: %d problems", root, len(report.problems))
    return report


def _pread(fh: Any, offset: int, size: int) -> bytes:
    fh.seek(offset)
    return fh.read(size)


def locate_damage(shard: str, idx: ShardIndex, read: Callable[[int, int], bytes]) -> list[Problem]:
    """Name the samples whose members fail their CRC-32 or whose tar headers are damaged;
    ``read(offset, size)`` gives the shard's bytes (fewer at its end)."""
    found = []
    c = idx.columns
    data_ext = get_codec(idx.codec).ext
    for i, key in enumerate(c["key"]):
        for ext, off_col, size_col, crc_col in (
            (data_ext, "wav_offset", "wav_size", "wav_crc32"),
            (META_EXT, "meta_offset", "meta_size", "meta_crc32"),
        ):
            off, size = c[off_col][i], c[size_col][i]
            raw = read(off - TAR_BLOCK, TAR_BLOCK + size)
            header, data = raw[:TAR_BLOCK], raw[TAR_BLOCK:]
            name = f"{key}.{ext}"
            try:
                info = tarfile.TarInfo.frombuf(header, "utf-8", "strict")
                if info.name != name or info.size != size:
                    raise tarfile.HeaderError(f"header names {info.name!r} of {info.size} bytes")
            except tarfile.HeaderError as exc:
                found.append(Problem(shard, key, f"tar header of {name} is damaged ({exc})"))
            if len(data) != size:
                found.append(Problem(shard, key, f"{name} is cut short"))
            elif zlib.crc32(data) != c[crc_col][i]:
                found.append(Problem(shard, key, f"{name} fails its CRC-32: its bytes changed"))
    return found
