"""How tests/golden/v2/ was made (run once, by hand, when format version 2 was released; never again:
the point of a golden fixture is that today's code must read yesterday's bytes).

    python tests/golden/make_v2.py

Two tiny shard sets from three synthetic 16-bit WAV sources (WAV so that decoding is exact on any
libsndfile): ``wav16`` in segments mode and ``mel-u8`` in recordings mode, plus an
``expected-<set>.json`` per set with the sha256 of each sample's data member.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

import shardkit
from shardkit import MelConfig, PackOptions

HERE = Path(__file__).resolve().parent / "v2"


def sources(root: Path) -> Path:
    rng = np.random.default_rng(2)
    rows = ["filename,primary_label,secondary_labels"]
    for n, (label, seconds) in enumerate([("amecro", 1.3), ("barswa", 0.7), ("barswa", 0.4)], start=1):
        t = np.arange(int(seconds * 16000)) / 16000
        x = 0.3 * np.sin(2 * np.pi * (600 + 300 * n) * t) + 0.05 * rng.standard_normal(t.size)
        path = root / "audio" / label / f"XC{n}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, x.astype(np.float32), 16000, subtype="PCM_16")
        rows.append(f"{label}/XC{n}.wav,{label},[]")
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    return root


def main() -> None:
    work = sources(Path(tempfile.mkdtemp()))
    sets = {
        "wav16-segments": PackOptions(sample_rate=16000, mode="segments", segment_seconds=0.5, order="sorted",
                                      shard_size="64KB"),
        "mel-u8": PackOptions(sample_rate=16000, mode="recordings", order="sorted", shard_size="64KB",
                              codec="mel-u8", mel=MelConfig(sample_rate=16000, n_fft=512, hop_length=256,
                                                            n_mels=32, f_min=50.0, f_max=8000.0)),
    }
    for name, options in sets.items():
        out = HERE / name
        shutil.rmtree(out, ignore_errors=True)
        shardkit.pack(work / "audio", out, metadata=work / "train.csv", options=options)
        expected = {}
        for entry in shardkit.list_samples(out):
            s = shardkit.read_sample(out, entry.key)
            expected[entry.key] = {"frames": entry.frames, "label": entry.primary_label,
                                   "data_sha256": hashlib.sha256(s.data).hexdigest(), "ext": s.ext}
        (HERE / f"expected-{name}.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
