"""Look into a shard set without training on it: ``info`` (manifest summary), ``list_samples``
(index rows) and ``read_sample`` (one sample's WAV bytes and metadata, by key)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shardkit.format import CODECS, ShardIndex, codec_of, load_manifest, manifest_root, seconds_per_frame


@dataclass(frozen=True)
class ShardSetInfo:
    """Summary of a shard set, from its manifest."""

    root: Path
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
    mel: dict[str, Any] | None = None  #: mel-u8 sets: the front-end settings (``MelConfig.to_dict()``)

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    def top_classes(self, n: int = 10) -> list[tuple[str, int]]:
        """The ``n`` primary labels with most samples, most first."""
        return sorted(self.label_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def info(path: str | os.PathLike[str]) -> ShardSetInfo:
    """Summarise the shard set at ``path`` (folder or manifest.json)."""
    doc = load_manifest(path)
    t = doc["totals"]
    return ShardSetInfo(
        root=manifest_root(path), version_id=doc["version_id"], format_version=doc["format_version"],
        complete=doc["complete"], codec=doc["audio"]["codec"], sample_rate=doc["audio"]["sample_rate"],
        channels=doc["audio"]["channels"], layout=doc["layout"], samples=t["samples"], seconds=t["seconds"],
        shards=len(doc["shards"]), bytes=t["bytes"], classes=len(doc["vocabulary"]),
        label_counts=dict(doc.get("label_counts", {})), sources=t["sources"],
        sources_packed=t["sources_packed"], rejects=list(doc.get("rejects", [])),
        more_bytes_needed=(doc.get("budget") or {}).get("more_bytes_needed", 0),
        mel=doc["audio"].get("mel"),
    )


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


def list_samples(path: str | os.PathLike[str]) -> Iterator[SampleEntry]:
    """Every sample of the shard set, shard by shard, in tar order (reads indexes only)."""
    doc = load_manifest(path)
    root = manifest_root(path)
    rate = doc["audio"]["sample_rate"]
    per_frame = seconds_per_frame(doc["audio"])
    for rec in doc["shards"]:
        idx = ShardIndex.load(root / rec["index"])
        vocab = idx.vocabulary
        c = idx.columns
        for i, key in enumerate(c["key"]):
            label = c["label"][i]
            yield SampleEntry(
                key=key, shard=rec["name"], frames=c["frames"][i], seconds=c["frames"][i] * per_frame,
                primary_label=vocab[label] if label >= 0 else None,
                secondary_labels=tuple(vocab[j] for j in c["secondary"][i]), source=c["source"][i],
                start_seconds=c["start"][i] / rate,
            )


@dataclass(frozen=True)
class Sample:
    """One stored sample: its data member's bytes (a complete ``.wav`` file, or for mel-u8 sets an
    ``.npy`` file) and its metadata map."""

    key: str
    shard: str
    wav: bytes
    meta: dict[str, Any]
    ext: str = "wav"        #: extension of the data member: "wav" or "npy"


def read_sample(path: str | os.PathLike[str], key: str) -> Sample:
    """The sample ``key`` of the shard set at ``path``; :class:`SampleNotFoundError` if absent."""
    from shardkit.read.shardset import ShardSet

    with ShardSet.open(path) as ss:
        i = ss.find(key)
        return Sample(key=key, shard=ss.shard_names[int(ss.shard_id[i])], wav=ss.read_wav_bytes(i),
                      meta=ss.read_meta(i), ext=CODECS[codec_of(ss.manifest["audio"])][0])


@dataclass(frozen=True)
class SplitPlan:
    """A dry run of how one epoch splits across ranks and DataLoader workers."""

    items: int                       #: items per epoch (samples × crops per recording)
    partial: str
    ranks: list[dict[str, Any]]      #: per rank: samples, batches, padded, worker_batches, warnings
    warnings: list[str]


def plan_split(
    path: str | os.PathLike[str],
    *,
    world_size: int = 1,
    workers: int = 0,
    batch_size: int = 64,
    crops_per_recording: int = 1,
    shuffle: bool = True,
    partial: str | None = None,
) -> SplitPlan:
    """Per-rank sample and batch counts of an epoch of the shard set at ``path``, as
    :class:`ShardDataset` would split it (the counts are the same for every epoch and seed)."""
    from shardkit.read.plan import describe_plan, plan_warnings

    doc = load_manifest(path)
    items = doc["totals"]["samples"] * int(crops_per_recording)
    policy = partial or ("pad" if shuffle else "keep")
    rows = describe_plan(items, world_size=world_size, workers=max(1, workers), batch_size=batch_size,
                         partial=policy)
    return SplitPlan(items=items, partial=policy, ranks=rows, warnings=plan_warnings(rows))
