"""The same inputs and options give the same shard bytes, release after release.

A reference corpus of synthetic 16-bit WAV sources (decoding WAV is exact on any libsndfile) is
packed three ways — wav16 recordings, wav16 segments with an overlapping hop, mel-u8 — and the
sha256 of every shard and index, and the manifest's content version id, are compared with
``reference_bytes.json`` (recorded once, by ``python tests/integration/test_reference_bytes.py
--record``, before the 0.3 refactor; re-record only together with a format version change).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import shardkit
from shardkit import PackOptions

RECORD = Path(__file__).with_name("reference_bytes.json")


def make_sources(root: Path) -> Path:
    """Five WAV files (22.05/44.1/16 kHz, mono and stereo, 0.6–3.1 s) + ``train.csv``; returns the CSV."""
    rng = np.random.default_rng(7)
    rows = ["filename,primary_label,secondary_labels,rating"]
    spec = [("amecro", 3.1, 22050, 1), ("barswa", 1.7, 44100, 2), ("barswa", 0.6, 16000, 1),
            ("grewar3", 2.4, 22050, 2), ("amecro", 1.2, 44100, 1)]
    for n, (label, seconds, rate, channels) in enumerate(spec, start=1):
        t = np.arange(int(seconds * rate)) / rate
        x = 0.3 * np.sin(2 * np.pi * (500 + 250 * n) * t) + 0.05 * rng.standard_normal(t.size)
        data = np.stack([x * (1 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)
        path = root / "audio" / label / f"XC{n}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, data, rate, subtype="PCM_16")
        secondary = "['barswa']" if n % 2 else "[]"
        rows.append(f'{label}/XC{n}.wav,{label},"{secondary}",{n}.5')
    csv_path = root / "train.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    return csv_path


def options() -> dict[str, PackOptions]:
    mel = shardkit.MelConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=32, f_min=50.0, f_max=8000.0)
    return {
        "wav16-recordings": PackOptions(sample_rate=16000, max_seconds=2.0, shard_size="64KB"),
        "wav16-segments-hop": PackOptions(sample_rate=16000, mode="segments", segment_seconds=1.0,
                                          hop_seconds=0.5, tail="pad", order="sorted", shard_size="64KB"),
        "mel-u8": PackOptions(sample_rate=16000, shard_size="64KB", codec="mel-u8", mel=mel),
    }


def digest(out: Path) -> dict[str, str]:
    """sha256 of every shard and index file, the manifest's version id, and the sha256 of the manifest
    without its ``shardkit_version`` (the library's release is the one thing allowed to differ)."""
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("shard-*"))}
    manifest = json.loads((out / "manifest.json").read_text())
    files["version_id"] = manifest["version_id"]
    manifest.pop("shardkit_version")
    files["manifest"] = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    return files


def pack_all(root: Path) -> dict[str, dict[str, str]]:
    csv_path = make_sources(root)
    result = {}
    for name, opts in options().items():
        out = root / name
        shardkit.pack(root / "audio", out, metadata=csv_path, options=opts)
        result[name] = digest(out)
    return result


@pytest.mark.parametrize("name", sorted(options()))
def test_pack_bytes_equal_the_reference(name, tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "reference-pack"
    if not (root / "train.csv").exists():
        pack_all(root)
    assert digest(root / name) == json.loads(RECORD.read_text())[name]


if __name__ == "__main__" and "--record" in sys.argv:
    import tempfile

    RECORD.write_text(json.dumps(pack_all(Path(tempfile.mkdtemp())), indent=1, sort_keys=True) + "\n")
