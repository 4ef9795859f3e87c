"""How tests/golden/v3/ was made (run once, by hand, when format version 3 was released; never again).

    python tests/golden/make_v3.py

``parent``: three synthetic 16-bit WAV sources packed (wav16 recordings; a plain pack still writes
version 2 files, plus its sources table). ``derived``: ``shardkit update`` of it after one source was
removed, one relabelled and one added: a version-3 manifest whose two remaining parent shards are
referenced (origin = the parent's version id), with a tombstone-free relabel override and one new shard.
Each set has ``expected-<set>.json`` with the sha256 of each sample's data member and its label.
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
from shardkit import PackOptions

HERE = Path(__file__).resolve().parent / "v3"


def write(root: Path, rows: list[tuple[str, str, float, int]]) -> Path:
    rng = np.random.default_rng(3)
    lines = ["filename,primary_label,secondary_labels"]
    for rel, label, seconds, freq in rows:
        t = np.arange(int(seconds * 16000)) / 16000
        x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
        path = root / "audio" / rel
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, x.astype(np.float32), 16000, subtype="PCM_16")
        lines.append(f"{rel},{label},[]")
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    return root / "train.csv"


def expected(out: Path) -> None:
    doc = {}
    for entry in shardkit.list_samples(out):
        s = shardkit.read_sample(out, entry.key)
        doc[entry.key] = {"frames": entry.frames, "label": entry.primary_label,
                          "data_sha256": hashlib.sha256(s.data).hexdigest(), "ext": s.ext}
    (HERE / f"expected-{out.name}.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def main() -> None:
    work = Path(tempfile.mkdtemp())
    first = [("amecro/XC1.wav", "amecro", 0.6, 700), ("barswa/XC2.wav", "barswa", 0.5, 900),
             ("barswa/XC3.wav", "barswa", 0.4, 1100)]
    csv_path = write(work, first)
    for name in ("parent", "derived"):
        shutil.rmtree(HERE / name, ignore_errors=True)
    opts = PackOptions(sample_rate=16000, mode="recordings", order="sorted", shard_size="64KB")
    shardkit.pack(work / "audio", HERE / "parent", metadata=csv_path, options=opts)
    second = [("amecro/XC1.wav", "amecro", 0.6, 700), ("barswa/XC2.wav", "grewar3", 0.5, 900),
              ("comrav/XC4.wav", "comrav", 0.45, 1300)]
    csv_path = write(work, second)
    shardkit.update(work / "audio", HERE / "parent", HERE / "derived", metadata=csv_path, note="golden v3")
    for name in ("parent", "derived"):
        expected(HERE / name)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
