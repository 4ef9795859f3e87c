"""A small real corpus (Ogg Vorbis), its first pack, and the season's change the versions tests use:
add 3 sources, remove 1, relabel 1, change the audio of 1; :func:`update_chain`, the two versions most
versions and Kaggle delta tests start from."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from audio_factory import make_corpus, make_file

import shardkit

OPTIONS = dict(sample_rate=16000, shard_size="64KB", max_seconds=2.0)


def options() -> shardkit.PackOptions:
    return shardkit.PackOptions(**OPTIONS)


def corpus(root: Path, n: int = 10) -> Path:
    """``root/audio`` + ``root/train_metadata.csv`` (returned)."""
    return make_corpus(root, n_files=n, seconds=(1.0, 3.0), sample_rate=16000)


def rows(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="") as fh:
        return list(csv.DictReader(fh))


def write_rows(csv_path: Path, data: list[dict[str, str]]) -> None:
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(data[0]))
        w.writeheader()
        w.writerows(data)


def season(root: Path, csv_path: Path, tag: str = "XN", seed: int = 200) -> dict[str, list[str]]:
    """Apply the change to the sources in place; returns the sources of each kind (paths relative to audio/)."""
    data = rows(csv_path)
    removed = data.pop(0)["filename"]
    data[0]["primary_label"] = f"newbird{tag}"
    relabelled = data[0]["filename"]
    changed = data[1]["filename"]
    make_file(root / "audio" / changed, 1.7, 16000, 1, seed=seed + 99)
    added = []
    for n in range(3):
        rel = f"grewar3/{tag}{n}.ogg"
        make_file(root / "audio" / rel, 1.2, 16000, 1, seed=seed + n)
        data.append({**data[2], "filename": rel, "primary_label": "grewar3"})
        added.append(rel)
    write_rows(csv_path, data)
    (root / "audio" / removed).unlink()
    return {"added": added, "removed": [removed], "relabelled": [relabelled], "changed": [changed]}


def first_pack_and_season(root: Path, shard_size: str | None = None) -> tuple[Path, dict[str, list[str]]]:
    """``root/v1``: the corpus (:func:`corpus`) packed with :data:`OPTIONS` (``shard_size``: larger shards, of
    several sources, so that an update leaves tombstones), then the season's change (:func:`season`) applied to
    the sources. Returns (metadata CSV, the sources of each kind); the update is the caller's."""
    csv_path = corpus(root)
    opts = {**OPTIONS, "shard_size": shard_size} if shard_size else OPTIONS
    shardkit.pack(root / "audio", root / "v1", metadata=csv_path, options=shardkit.PackOptions(**opts))
    return csv_path, season(root, csv_path)


def update_chain(root: Path, shard_size: str | None = None) -> tuple[Path, dict[str, list[str]], shardkit.UpdateResult]:
    """:func:`first_pack_and_season`, then ``root/v2``: the update of ``root/v1`` to the changed sources (note
    "season 2"). Returns (metadata CSV, the sources of each kind, the update's result)."""
    csv_path, kinds = first_pack_and_season(root, shard_size)
    result = shardkit.update(root / "audio", root / "v1", root / "v2", metadata=csv_path, note="season 2")
    return csv_path, kinds, result


def samples(path: Path, **kw) -> dict[str, tuple[str | None, tuple[str, ...], bytes]]:
    """key → (primary label, secondary labels, audio bytes) of every sample a reader yields."""
    out = {}
    with shardkit.ShardSet.open(path, **kw) as ss:
        for i, key in enumerate(ss.keys):
            label = int(ss.label[i])
            sec = tuple(ss.vocabulary[int(j)] for j in ss.sec_idx[ss.sec_ptr[i]:ss.sec_ptr[i + 1]])
            out[key] = (ss.vocabulary[label] if label >= 0 else None, sec,
                        np.ascontiguousarray(ss.read_frames(i)).tobytes())
    return out
