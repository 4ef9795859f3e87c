"""The dataset manifest (format §5): build it, derive its content version id, write it last."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from shardkit.files import atomic_write
from shardkit.format import FORMAT_VERSION, MANIFEST_NAME, dumps_json, seconds_per_frame


def version_id(audio: dict[str, Any], layout: dict[str, Any], vocabulary: list[str],
               shard_hashes: list[str]) -> str:
    """``sk1-`` + 16 hex digits of sha256 over the content that defines the data: equal data ⇔ equal id."""
    canon = json.dumps(
        {"format_version": FORMAT_VERSION, "audio": audio, "layout": layout,
         "vocabulary": vocabulary, "shards": shard_hashes},
        sort_keys=True, separators=(",", ":"),
    )
    return "sk1-" + hashlib.sha256(canon.encode()).hexdigest()[:16]


def build_manifest(
    *,
    audio: dict[str, Any],
    layout: dict[str, Any],
    vocabulary: list[str],
    label_counts: dict[str, int],
    shards: list[dict[str, Any]],
    pack: dict[str, Any],
    rejects: list[dict[str, Any]],
    sources: int,
    sources_packed: int,
    complete: bool,
    budget: dict[str, Any],
) -> dict[str, Any]:
    """The manifest document; totals are derived from ``shards``."""
    from shardkit._version import __version__

    frames = sum(s["frames"] for s in shards)
    seconds = frames * seconds_per_frame(audio)
    return {
        "format": "shardkit.manifest",
        "format_version": FORMAT_VERSION,
        "shardkit_version": __version__,
        "version_id": version_id(audio, layout, vocabulary, [s["sha256"] for s in shards]),
        "complete": complete,
        "audio": audio,
        "layout": layout,
        "vocabulary": vocabulary,
        "label_counts": {k: label_counts[k] for k in sorted(label_counts)},
        "shards": shards,
        "totals": {
            "samples": sum(s["samples"] for s in shards),
            "frames": frames,
            "seconds": round(seconds, 6),
            "hours": round(seconds / 3600, 6),
            "bytes": sum(s["bytes"] + s["index_bytes"] for s in shards),
            "sources": sources,
            "sources_packed": sources_packed,
        },
        "pack": pack,
        "rejects": rejects,
        "budget": budget,
    }


def write_manifest(out: Path, doc: dict[str, Any]) -> Path:
    """Write ``manifest.json`` atomically; return its path."""
    path = out / MANIFEST_NAME
    atomic_write(path, dumps_json(doc))
    return path
