"""Real encoded audio for tests: ogg (Vorbis), opus, flac, mp3 and wav files of :func:`shardkit.synth.chirp`
written with :func:`shardkit.synth.write_audio` (libsndfile), their samples deterministic in their seed.
(The tests make their own files; users of the project do not have the recordings in ../shared.)"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from shardkit.synth import chirp, write_audio


def make_file(path: Path, seconds: float = 2.0, sample_rate: int = 44100, channels: int = 1, seed: int = 0) -> Path:
    """A :func:`shardkit.synth.chirp` encoded to ``path`` (the extension picks the codec, see
    :data:`shardkit.synth.FORMATS`)."""
    return write_audio(path, chirp(seconds, sample_rate, channels, seed), sample_rate)


def make_corpus(root: Path, n_files: int = 12, labels: tuple[str, ...] = ("amecro", "barswa", "grewar3"),
                seconds: tuple[float, float] = (1.0, 8.0), sample_rate: int = 32000, ext: str = ".ogg",
                seed: int = 0) -> Path:
    """A BirdCLEF-shaped folder ``root/audio/<label>/XC<n>.ogg`` + ``root/train_metadata.csv``;
    returns the CSV path."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_files):
        label = labels[i % len(labels)]
        secs = float(rng.uniform(*seconds))
        rel = f"{label}/XC{1000 + i}{ext}"
        make_file(root / "audio" / rel, secs, sample_rate, 1 + (i % 2), seed + i)
        sec = [labels[(i + 1) % len(labels)]] if i % 3 == 0 else []
        rows.append({"primary_label": label, "secondary_labels": repr(sec), "type": "['song']",
                     "latitude": f"{40 + i * 0.1:.4f}", "longitude": "-3.5", "author": f"A. Author{i}",
                     "rating": f"{(i % 5) + 0.5}", "filename": rel})
    return write_metadata(root / "train_metadata.csv", rows)


def write_metadata(csv_path: Path, rows: list[dict[str, str]]) -> Path:
    """Write ``rows`` (the same keys each) as a metadata CSV with a header; returns its path."""
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return csv_path
