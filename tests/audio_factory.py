"""Real encoded audio for tests: ogg (Vorbis), opus, flac, mp3 and wav files written with
soundfile/libsndfile, deterministic in their seed. (The tests make their own files; users of the
project do not have the recordings in ../shared.)"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

FORMATS = {
    ".ogg": ("OGG", "VORBIS"),
    ".opus": ("OGG", "OPUS"),
    ".flac": ("FLAC", "PCM_16"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".wav": ("WAV", "PCM_16"),
}
BLOCK = 16384  # libsndfile's Vorbis encoder crashes on one huge write: write in blocks


def signal(seconds: float, sample_rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """float32 (frames, channels): chirps over noise, in [-0.8, 0.8]."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    base = 600 + 200 * (seed % 7)
    x = 0.35 * np.sin(2 * np.pi * (base * t + 300 * t * t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t))
    out = np.empty((n, channels), np.float32)
    for c in range(channels):
        out[:, c] = x * (1.0 - 0.3 * c) + 0.05 * rng.standard_normal(n)
    return out


def write_audio(path: Path, data: np.ndarray, sample_rate: int) -> Path:
    """Encode ``data`` (frames, channels) float32 to ``path``; the extension picks the codec."""
    fmt, subtype = FORMATS[path.suffix]
    path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(path, "w", sample_rate, data.shape[1], format=fmt, subtype=subtype) as f:
        for i in range(0, len(data), BLOCK):
            f.write(data[i:i + BLOCK])
    return path


def make_file(path: Path, seconds: float = 2.0, sample_rate: int = 44100, channels: int = 1, seed: int = 0) -> Path:
    return write_audio(path, signal(seconds, sample_rate, channels, seed), sample_rate)


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
    csv_path = root / "train_metadata.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return csv_path
