"""Look into a shard set without training on it: ``info`` (manifest summary), ``list_samples``
(index rows) and ``read_sample`` (one sample's WAV bytes and metadata, by key)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shardkit.errors import ManifestError, UsageError
from shardkit.files import atomic_write, check_output
from shardkit.format import MANIFEST_NAME, Manifest, ShardIndex, manifest_root


@dataclass(frozen=True)
class ShardSetInfo:
    """Summary of a shard set, from its manifest."""

    root: Path | str          #: the folder, or the URL of a set on object storage
    version_id: str
    format_version: int
    complete: bool
    codec: str
    sample_rate: int          #: Hz
    channels: int
    layout: dict[str, Any]
    samples: int
    seconds: float            #: audio seconds stored
    shards: int
    bytes: int                #: shard + index bytes
    classes: int
    label_counts: dict[str, int]
    sources: int
    sources_packed: int
    rejects: list[dict[str, Any]]
    more_bytes_needed: int
    mel: dict[str, Any] | None = None  #: sets of spectrograms: the front-end settings (``MelConfig.to_dict()``)
    shard_bytes: int = 0      #: bytes of the shard files alone (what :func:`shardkit.verify` hashes with progress)
    parent: str | None = None  #: version id of the set this one was updated from (docs/versions.md)
    inherited_shards: int = 0  #: shards of earlier versions it uses where they are (not copied)
    missing_shards: list[str] = field(default_factory=list)  #: of those, the ones not found (local sets)
    reject_count: int = 0      #: sources not packed (a version-4 set read from a URL lists none in ``rejects``)

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    def top_classes(self, n: int = 10) -> list[tuple[str, int]]:
        """The ``n`` primary labels with most samples, most first."""
        return sorted(self.label_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _open_manifest(path: str | os.PathLike[str], storage_options: dict[str, Any] | None) -> tuple[Manifest, Any]:
    """(manifest, storage) of a URL (read once, in a child process: see ``ObjectStorage``), or
    (manifest, None) of a local folder."""
    from shardkit.storage.location import Location, open_storage

    root, name = Location.of_set(path, MANIFEST_NAME)
    if root.is_local:
        if storage_options:
            raise UsageError(f"{path}: storage_options apply to object-store URLs, not to a local folder")
        return Manifest.load(path), None
    storage = open_storage(root, storage_options)
    storage.open_set(name)
    where = storage.describe(name)
    try:
        data = storage.read_bytes(name)
    except FileNotFoundError:
        raise ManifestError(f"{where}: no manifest; is this a shard set made by 'shardkit pack'?") from None
    return Manifest.from_json(data, where), storage


def info(path: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None) -> ShardSetInfo:
    """Summarise the shard set at ``path`` (folder, manifest.json, or an object-store URL)."""
    from shardkit.format.checks import counted_totals

    doc, _ = _open_manifest(path, storage_options)
    t, codec = doc.totals, doc.codec
    counted = counted_totals(doc)  # what the shard entries hold, not what totals claim (verify compares them)
    return ShardSetInfo(
        root=_root(path), version_id=doc.version_id, format_version=doc.format_version,
        complete=doc.complete, codec=codec.codec_id, sample_rate=codec.sample_rate,
        channels=codec.channels, layout=doc.layout, samples=int(counted["samples"]),
        seconds=counted["seconds"] if "seconds" in counted else t.get("seconds", 0.0), shards=len(doc.shards),
        bytes=int(counted["bytes"]),
        classes=len(doc.vocabulary), label_counts=dict(doc.label_counts), sources=t.get("sources", 0),
        sources_packed=t.get("sources_packed", 0), rejects=list(doc.rejects), reject_count=doc.reject_count,
        more_bytes_needed=doc.budget.get("more_bytes_needed", 0),
        mel=codec.mel.to_dict() if codec.mel is not None else None,
        shard_bytes=sum(s.bytes for s in doc.shards), parent=doc.parent,
        inherited_shards=sum(s.origin is not None for s in doc.shards),
        missing_shards=_missing_inherited(path, doc),
    )


def _missing_inherited(path: str | os.PathLike[str], doc: Manifest) -> list[str]:
    """The ancestors' shards a local derived set uses that are not where a reader looks."""
    if not doc.derived or "://" in str(path):
        return []
    from shardkit.read.lineage import missing_inherited

    return missing_inherited(manifest_root(path), doc)


@dataclass(frozen=True)
class SampleEntry:
    """One row of a shard index."""

    key: str
    shard: str
    frames: int
    seconds: float
    primary_label: str | None
    secondary_labels: tuple[str, ...]
    source: str
    start_seconds: float


def _root(path: str | os.PathLike[str]) -> Path | str:
    from shardkit.storage.location import Location

    return Location.of_set(path, MANIFEST_NAME)[0].native


def list_samples(path: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None
                 ) -> Iterator[SampleEntry]:
    """Every sample of the shard set, shard by shard, in tar order (reads indexes only)."""
    doc, storage = _open_manifest(path, storage_options)
    if doc.derived:  # ancestors' shards and overrides: read through the reader, which applies them
        yield from _list_derived(path, storage_options)
        return
    root = manifest_root(path) if storage is None else None
    codec = doc.codec
    rate, per_frame = codec.sample_rate, codec.seconds_per_frame
    for rec in doc.shards:
        if storage is None:
            idx = ShardIndex.load(root / rec.index)
        else:
            idx = ShardIndex.from_bytes(storage.read_bytes(rec.index), storage.describe(rec.index))
        yield from _entries(rec.name, idx, rate, per_frame)


def _list_derived(path: str | os.PathLike[str], storage_options: dict[str, Any] | None) -> Iterator[SampleEntry]:
    """:func:`list_samples` of a set made by ``shardkit update`` (format §5.1): its indexes read where
    the reader found them, with the overrides applied."""
    from shardkit.format.overrides import apply_overrides
    from shardkit.read.shardset import ShardSet

    with ShardSet.open(path, storage_options=storage_options) as ss:
        doc, st = ss.manifest, ss.storage
        indexes = [ShardIndex.from_bytes(st.read_bytes(e.index), st.describe(e.index)) for e in doc.shards]
    for rec, idx in zip(doc.shards, apply_overrides(doc, indexes), strict=True):
        yield from _entries(rec.name, idx, doc.codec.sample_rate, doc.codec.seconds_per_frame)


def _entries(shard: str, idx: ShardIndex, rate: int, per_frame: float) -> Iterator[SampleEntry]:
    vocab, c = idx.vocabulary, idx.columns
    for i, key in enumerate(c["key"]):
        label = c["label"][i]
        yield SampleEntry(
            key=key, shard=shard, frames=c["frames"][i], seconds=c["frames"][i] * per_frame,
            primary_label=vocab[label] if label >= 0 else None,
            secondary_labels=tuple(vocab[j] for j in c["secondary"][i]), source=c["source"][i],
            start_seconds=c["start"][i] / rate,
        )


@dataclass(frozen=True)
class Sample:
    """One stored sample: its data member's bytes (a complete file of the codec's format: ``.wav`` for
    wav16, ``.npy`` for mel-u8) and its metadata map."""

    key: str
    shard: str
    data: bytes
    meta: dict[str, Any]
    ext: str                #: extension of the data member (the codec's), e.g. "wav" or "npy"


def read_sample(path: str | os.PathLike[str], key: str, *, storage_options: dict[str, Any] | None = None) -> Sample:
    """The sample ``key`` of the shard set at ``path`` (folder or URL); :class:`SampleNotFoundError` if absent."""
    from shardkit.read.shardset import ShardSet

    with ShardSet.open(path, storage_options=storage_options) as ss:
        i = ss.find(key)
        return Sample(key=key, shard=ss.shard_names[int(ss.shard_id[i])], data=ss.read_data_member(i),
                      meta=ss.read_meta(i), ext=ss.codec.ext)


def extract_sample(path: str | os.PathLike[str], key: str, output: str | os.PathLike[str], *, force: bool = False,
                   storage_options: dict[str, Any] | None = None) -> Sample:
    """Write the data member of sample ``key`` (a ``.wav`` file, ``.npy`` for mel-u8 sets) to ``output``;
    returns the sample.

    Never overwrites by accident: an existing ``output`` needs ``force=True``, and a path inside the
    shard set itself is always refused, and so is anything there that is not a regular file (a FIFO, a
    symlink, a device), even with ``force``. The file appears whole or not at all (temp + rename).
    """
    out = Path(output)
    if out.is_dir() and not out.is_symlink():
        raise UsageError(f"{out}: is a folder; give a file name, e.g. {out / (key.replace('/', '_') + '.wav')}")
    check_output(out, force=force, refuse_inside=None if "://" in str(path) else manifest_root(path))
    sample = read_sample(path, key, storage_options=storage_options)
    atomic_write(out, sample.data)
    return sample
