"""Shard sets for the recipe tests (subsets, folds, weights, mixtures), packed by ``shardkit.pack`` from
real encoded audio (:mod:`audio_factory`) with a BirdCLEF-shaped metadata CSV (importable through
pytest's ``pythonpath``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from audio_factory import make_file, write_metadata

import shardkit
from shardkit.write.options import PackOptions


def pack_corpus(root: Path, files: Sequence[tuple[str, float]], *, sample_rate: int = 8000,
                segment_seconds: float = 1.0, ext: str = ".ogg", prefix: str = "XC") -> Path:
    """Pack one file per ``(label, seconds)`` (``root/audio/<label>/<prefix><n><ext>``, rating ``n % 5 + 1``,
    author ``n % 3``) in segments mode into ``root/set``; returns the set's folder."""
    rows = []
    for n, (label, seconds) in enumerate(files):
        rel = f"{label}/{prefix}{n:04d}{ext}"
        make_file(root / "audio" / rel, seconds, sample_rate, 1, seed=n)
        rows.append({"primary_label": label, "secondary_labels": "[]", "rating": str(n % 5 + 1),
                     "author": f"author{n % 3}", "filename": rel})
    meta = write_metadata(root / "train_metadata.csv", rows)
    opts = PackOptions(sample_rate=sample_rate, mode="segments", segment_seconds=segment_seconds, tail="pad",
                       shard_size="200KB")
    shardkit.pack(root / "audio", root / "set", metadata=meta, options=opts)
    return root / "set"
