"""``verify``: every check a reader makes, plus the spec's rules, reported instead of raised.

For each shard entry of the manifest (docs/format.md §6): the index's and the shard's size and sha256
against the manifest; every check :meth:`ShardSet.open <shardkit.ShardSet.open>` makes
(:mod:`shardkit.format.checks`: the index belongs to the entry, members lie inside the shard and fit
the codec, labels inside the vocabulary, keys unique); the key grammar; and, walking the tar as its
bytes are hashed (:mod:`~shardkit.check.tarscan`), every member header (name ``KEY.<ext>`` as the
index says, regular file, size, safe name, ustar magic, checksum), the index offsets pointing exactly
at member data, every member's CRC-32, and the end-of-archive. A set :meth:`ShardSet.open` refuses never
verifies OK. The same code verifies a folder and an object-store URL (through its
:class:`~shardkit.storage.base.Storage`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tarfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shardkit import format as fmt
from shardkit.check.tarscan import TarScan, scan_tar
from shardkit.encode.registry import get_codec
from shardkit.errors import FormatError, ShardkitError
from shardkit.format import (
    LINEAGE_VERSION,
    META_EXT,
    TAR_BLOCK,
    Manifest,
    ShardEntry,
    ShardIndex,
    checks,
    is_shard_name,
)
from shardkit.format.layers import LAYER_PREFIX, LAYER_SUFFIX, layer_findings
from shardkit.storage.base import Storage

logger = logging.getLogger(__name__)
#: bytes per ranged read while hashing, and reads in flight (object stores overlap them)
CHUNK = 8 * 1024 * 1024
PARALLEL = 4


@dataclass(frozen=True)
class VerifyProblem:
    """One thing wrong: the file, the sample key where known, and what."""

    file: str
    key: str | None
    what: str

    def __str__(self) -> str:
        return f"{self.file}{' [' + self.key + ']' if self.key else ''}: {self.what}"


@dataclass
class VerifyReport:
    """Result of :func:`verify`; ``ok`` is True when no problem was found. ``advice``: what fixes the
    problems found (``shardkit reindex`` for indexes, re-download or re-pack for shards)."""

    root: Path | str
    shards: int = 0
    samples: int = 0
    bytes_checked: int = 0
    problems: list[VerifyProblem] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    #: object name → the folder of the ancestor set it was read from (derived sets): its fixes go there
    homes: dict[str, Path] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, findings: list[checks.Finding]) -> None:
        """Record reader findings as problems, with the advice that fixes them."""
        for f in findings:
            self.problems.append(VerifyProblem(f.file, f.key, f.what))
            self._advise(f.fix, f.file)

    def _advise(self, fix: str, file: str = "") -> None:
        line = checks.advice(fix, self.homes.get(file, self.root))
        if line not in self.advice:
            self.advice.append(line)

    def problem(self, file: str, key: str | None, what: str, fix: str = checks.REFETCH) -> None:
        self.problems.append(VerifyProblem(file, key, what))
        self._advise(fix, file)


def verify(path: str | os.PathLike[str], *, progress: Callable[[int], None] | None = None,
           storage_options: dict[str, Any] | None = None,
           search_path: Sequence[str | os.PathLike[str]] | None = None) -> VerifyReport:
    """Check the shard set at ``path`` (folder or manifest.json, or an object-store URL: ``s3://bucket/prefix/``,
    … with ``storage_options``) as the module docstring says.

    ``progress`` is called with the number of shard bytes hashed after each chunk. Returns a report
    listing every problem found, each naming the file and, where there is one, the sample; raises only
    when the manifest itself is unusable (:class:`~shardkit.errors.ManifestError`, or for a URL, the
    storage cannot be reached: :class:`~shardkit.errors.StorageError`). A set made by ``shardkit update``
    is checked together with the ancestors' shards it uses, found as the reader finds them
    (``search_path``, :mod:`shardkit.read.lineage`), and its overrides applied before the set checks.
    """
    from shardkit.read.shardset import load_manifest, locate_set
    from shardkit.storage.location import resolve_location

    path, search_path = resolve_location(path, search_path)
    where, name, storage = locate_set(path, None, storage_options)
    root = where.native
    try:
        doc = load_manifest(storage, name)
        homes: dict[str, Path] = {}
        if doc.derived and where.is_local:  # with the ancestors' shards it uses (format §5.1)
            from shardkit.read.lineage import resolve
            from shardkit.storage.routed import RoutedStorage

            try:
                homes = resolve(root, doc, search_path)
            except ShardkitError as exc:
                try:  # the parent's shards found, but an index is not the manifest's: checked and named below
                    homes = resolve(root, doc, search_path, check_index=False)
                except ShardkitError:
                    report = VerifyReport(root, shards=len(doc.shards), samples=doc.samples)
                    report.problem(str(doc.parent), None, str(exc), checks.PARENT)
                    return report
            storage = RoutedStorage(storage, homes)
        report = check_set(storage, doc, root, progress, homes)
    finally:
        storage.close()
    if report.problems:
        logger.warning("verify %s: %d problems", root, len(report.problems))
    return report


def check_set(storage: Storage, doc: Manifest, root: Path | str,
              progress: Callable[[int], None] | None = None, homes: dict[str, Path] | None = None) -> VerifyReport:
    """:func:`verify` of the set whose manifest is ``doc``, read through ``storage`` (``homes``: the
    ancestors' folders of a derived set's objects, where their fixes apply)."""
    report = VerifyReport(root, homes=dict(homes or {}))
    doc.codec  # noqa: B018 - an unusable audio map is an unusable manifest: ManifestError
    indexes, names = [], []
    for rec in doc.shards:
        report.shards += 1
        report.samples += rec.samples
        idx = _check_index(storage, rec, doc, report)
        _check_shard(storage, rec, idx, report, progress)
        if idx is not None:
            indexes.append(idx)
            names.append(rec.index)
    complete = len(indexes) == len(doc.shards)
    if doc.derived and complete:
        from shardkit.format.overrides import apply_overrides

        indexes = apply_overrides(_check_overrides(doc, indexes, report), indexes)
    report.add(checks.set_findings(indexes, names, len(doc.vocabulary)))
    report.add(checks.totals_findings(doc, indexes if complete else None))
    if doc.sources:
        _check_named_file(storage, doc.sources, "sources table", report)
    if doc.rejects_file:  # a version-4 set's rejects (format §5.4)
        _check_named_file(storage, doc.rejects_file, "rejects file", report)
    if doc.layers:
        _check_layers(storage, doc, report, indexes if complete else None)
    if doc.derived:  # what a reader yields: overrides applied
        report.samples = sum(len(ix) for ix in indexes) if complete else doc.samples
    if isinstance(root, Path):
        listed = {e.name for e in doc.shards}
        for name in sorted(os.listdir(root)):
            if is_shard_name(name) and name not in listed:
                report.problem(name, None, "shard is not listed in the manifest")
            elif name.startswith(LAYER_PREFIX) and name.endswith(LAYER_SUFFIX) and name not in \
                    {e.file for e in doc.layers}:
                report.problem(name, None, "label layer file is not listed in the manifest")
    return report


def _check_overrides(doc: Manifest, indexes: list[ShardIndex], report: VerifyReport) -> Manifest:
    """Problems of the overrides themselves (format §5.1), named on the manifest: a tombstone of a key its
    shard does not hold, a relabel of a key no shard holds or to a class outside the vocabulary. Returns
    the manifest without the relabels to unknown classes, so their samples are not blamed on the index
    that holds them."""
    keys_in = {e.name: set(ix.columns["key"]) for e, ix in zip(doc.shards, indexes, strict=True)}
    every = set().union(*keys_in.values())
    for shard, keys in doc.overrides.get("removed", {}).items():
        for k in keys:
            if k not in keys_in.get(shard, ()):
                report.problem(fmt.MANIFEST_NAME, k, f"overrides.removed drops {k!r} from {shard}, which does not hold "
                               "it (the totals then count a sample too few)")
    relabels, vocab, bad = doc.overrides.get("relabels", {}), set(doc.vocabulary), set()
    for k, new in relabels.items():
        if k not in every:
            report.problem(fmt.MANIFEST_NAME, k, f"overrides.relabels relabels {k!r}, which no shard holds")
        named = [new.get("primary_label"), *new.get("secondary_labels", [])] if isinstance(new, dict) else []
        unknown = [c for c in named if c and c not in vocab]
        if unknown:
            bad.add(k)
            report.problem(fmt.MANIFEST_NAME, k, f"overrides.relabels gives {k!r} the classes {unknown}, outside the "
                           f"vocabulary ({len(vocab)} classes)")
    if not bad:
        return doc
    kept = {k: v for k, v in relabels.items() if k not in bad}
    return dataclasses.replace(doc, overrides={**doc.overrides, "relabels": kept})


def _check_index(storage: Storage, rec: ShardEntry, doc: Manifest, report: VerifyReport) -> ShardIndex | None:
    """Read, hash and parse the index of ``rec``; run the reader's index checks. None when unusable."""
    try:
        raw = storage.read_bytes(rec.index)
    except FileNotFoundError:
        report.problem(rec.index, None, "index file is missing", checks.REINDEX)
        return None
    except (ShardkitError, OSError) as exc:
        report.problem(rec.index, None, f"cannot be read: {exc}", checks.REINDEX)
        return None
    if len(raw) != rec.index_bytes or hashlib.sha256(raw).hexdigest() != rec.index_sha256:
        report.problem(rec.index, None, "size or sha256 differs from the manifest", checks.REINDEX)
    try:
        idx = ShardIndex.from_bytes(raw, storage.describe(rec.index))
    except FormatError as exc:
        report.problem(rec.index, None, f"unreadable: {exc}", checks.REINDEX)
        return None
    vocab = doc.vocabularies[rec.origin] if rec.origin is not None else doc.vocabulary
    found = checks.index_findings(idx, rec, vocab, doc.codec)
    report.add(found)
    lineage = doc.format_version >= LINEAGE_VERSION  # its indexes keep their own (older) version
    if idx.shard_sha256 != rec.sha256 or (idx.format_version >= LINEAGE_VERSION if lineage
                                          else idx.format_version != doc.format_version):
        report.problem(rec.index, None, "index's shard_sha256 or format_version differs from the manifest's",
                       checks.REINDEX)
    return None if found else idx


def _check_named_file(storage: Storage, ref: dict[str, Any], what: str, report: VerifyReport) -> None:
    """A file the manifest names with its size and sha256 (a version-3 sources table, a version-4 rejects
    file) has them."""
    name = str(ref.get("name"))
    try:
        raw = storage.read_bytes(name)
    except (ShardkitError, OSError) as exc:
        report.problem(name, None, f"{what} cannot be read: {exc}")
        return
    if len(raw) != ref.get("bytes") or hashlib.sha256(raw).hexdigest() != ref.get("sha256"):
        report.problem(name, None, f"{what}'s size or sha256 differs from the manifest")


def _check_layers(storage: Storage, doc: Manifest, report: VerifyReport, indexes: list[ShardIndex] | None) -> None:
    """Each label layer (format §5.3): readable, size and sha256, as its entry says, values in [0, 1],
    rows naming samples (sources) of the set — the latter when every index could be read."""
    keys = {k for ix in indexes for k in ix.columns["key"]} if indexes is not None else None
    sources = {s for ix in indexes for s in ix.columns["source"]} if indexes is not None else None
    for entry in doc.layers:
        try:
            data = storage.read_bytes(entry.file)
        except (ShardkitError, OSError) as exc:
            report.problem(entry.file, None, f"label layer {entry.name!r} cannot be read: {exc}")
            continue
        for what in layer_findings(data, entry, keys, sources, storage.describe(entry.file)):
            report.problem(entry.file, None, f"label layer {entry.name!r}: {what}")


def _check_shard(storage: Storage, rec: ShardEntry, idx: ShardIndex | None, report: VerifyReport,
                 progress: Callable[[int], None] | None) -> None:
    """Size, sha256 and tar walk of the shard of ``rec``; with a usable index, the reader's extent checks
    and the members against the index."""
    try:
        size = storage.size(rec.name)
    except FileNotFoundError:
        report.problem(rec.name, None, "shard file is missing")
        return
    except (ShardkitError, OSError) as exc:
        report.problem(rec.name, None, f"cannot be read: {exc}")
        return
    if size != rec.bytes:
        report.problem(rec.name, None, f"size is {size} bytes, the manifest says {rec.bytes} (truncated?)")
    if idx is not None:
        if idx.shard_bytes != size:
            report.problem(rec.name, None, f"shard has {size} bytes, its index says {idx.shard_bytes}")
        found = checks.extent_findings(idx, rec.index, size, get_codec(idx.codec))
        report.add(found)
        idx = None if found else idx
    sha = hashlib.sha256()
    try:
        scan = scan_tar(hashed(read_chunks(storage, rec.name, size), sha, progress))
    except OSError as exc:
        report.problem(rec.name, None, f"cannot be read: {exc}")
        return
    report.bytes_checked += size
    if sha.hexdigest() != rec.sha256:
        report.problem(rec.name, None, "sha256 differs from the manifest")
    keys = set(idx.columns["key"]) if idx is not None else set()
    for _off, member, what in scan.problems[:checks.MAX_NAMED]:
        key = member.rsplit(".", 1)[0] if member else None
        report.problem(rec.name, key if key in keys else None, f"{member + ': ' if member else ''}{what}")
    if idx is not None:
        _compare(rec.name, idx, scan, report, lambda off, n: _read(storage, rec.name, off, n))


def _compare(shard: str, idx: ShardIndex, scan: TarScan, report: VerifyReport,
             read: Callable[[int, int], bytes]) -> None:
    """Each sample's two members are where the index says, named, sized and CRC'd as it says, in index
    order; no member is left out of the index. Samples past where the walk stopped are checked by
    reading at their offsets (:func:`locate_damage`)."""
    c, ext = idx.columns, get_codec(idx.codec).ext
    at = {m.offset: (pos, m) for pos, m in enumerate(scan.members)}
    used, unreached, order_ok = set(), [], True
    for i, key in enumerate(c["key"]):
        for slot, (x, off, size, crc) in enumerate(((ext, "wav_offset", "wav_size", "wav_crc32"),
                                                     (META_EXT, "meta_offset", "meta_size", "meta_crc32"))):
            name, offset = f"{key}.{x}", c[off][i]
            hit = at.get(offset)
            if hit is None:
                if scan.ended or offset < scan.reached:
                    report.problem(shard, key, f"index offset {offset} of {name} is not where a member's data starts",
                                   checks.REINDEX)
                else:
                    unreached.append(i)
                continue
            pos, m = hit
            used.add(pos)
            order_ok = order_ok and pos == 2 * i + slot
            if m.name != name or m.size != c[size][i]:
                report.problem(shard, key, f"member at offset {offset} is {m.name!r} of {m.size} bytes, the index "
                               f"says {name!r} of {c[size][i]}", checks.REINDEX)
            elif m.crc32 != c[crc][i]:
                report.problem(shard, key, f"{name} fails its CRC-32: its bytes changed")
    if not order_ok:
        report.problem(shard, None, "members are not in index order (data member, then .mp, per sample)",
                       checks.REINDEX)
    extra = [m for pos, m in enumerate(scan.members) if pos not in used]
    for m in extra[:checks.MAX_NAMED]:
        report.problem(shard, None, f"member {m.name!r} at offset {m.offset} is not in the index")
    if unreached:
        report.problems.extend(locate_damage(shard, idx, read, sorted(set(unreached))))


def read_chunks(storage: Storage, name: str, size: int) -> Iterator[bytearray]:
    """The bytes of object ``name`` in order, :data:`PARALLEL` ranged reads of :data:`CHUNK` at a time."""
    step = CHUNK * PARALLEL
    for start in range(0, size, step):
        bufs = [bytearray(min(CHUNK, size - off)) for off in range(start, min(start + step, size), CHUNK)]
        errors = storage.read_into(name, [(start + k * CHUNK, len(b), memoryview(b)) for k, b in enumerate(bufs)])
        if errors:
            raise errors[0][1]
        yield from bufs


def hashed(chunks: Iterator[bytearray], sha: Any, progress: Callable[[int], None] | None) -> Iterator[bytearray]:
    for chunk in chunks:
        sha.update(chunk)
        if progress:
            progress(len(chunk))
        yield chunk


def _read(storage: Storage, name: str, offset: int, size: int) -> bytes:
    buf = bytearray(size)
    errors = storage.read_into(name, [(offset, size, memoryview(buf))])
    if errors:
        return bytes(buf[:getattr(errors[0][1], "got", 0)])
    return bytes(buf)


def locate_damage(shard: str, idx: ShardIndex, read: Callable[[int, int], bytes],
                  rows: list[int] | None = None) -> list[VerifyProblem]:
    """Name the samples (``rows``, default all) whose members fail their CRC-32 or whose tar headers are
    damaged; ``read(offset, size)`` gives the shard's bytes (fewer at its end)."""
    found = []
    c = idx.columns
    data_ext = get_codec(idx.codec).ext
    for i in range(len(idx)) if rows is None else rows:
        key = c["key"][i]
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
                found.append(VerifyProblem(shard, key, f"tar header of {name} is damaged ({exc})"))
            if len(data) != size:
                found.append(VerifyProblem(shard, key, f"{name} is cut short"))
            elif zlib.crc32(data) != c[crc_col][i]:
                found.append(VerifyProblem(shard, key, f"{name} fails its CRC-32: its bytes changed"))
    return found
