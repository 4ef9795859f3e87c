"""How tests/golden/v4/typed was made (run once, by hand, when format version 4 was released; never again).

    python tests/golden/make_v4_typed.py

``typed``: three synthetic 16-bit WAV sources packed (wav16 recordings) from a CSV whose ``rating`` column
holds a ``"-"`` and whose ``count`` mixes ``3`` and ``4.5``, and which names one file that does not exist:
a version-4 manifest with ``columns`` (``rating``/``count``: float) and ``rejects_file`` naming
``rejects.json`` (the missing file). Shards and indexes are version 2, as a plain pack writes them.
``expected-typed.json`` holds the sha256 of each sample's data member, its label and its ``extra``.
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

HERE = Path(__file__).resolve().parent / "v4"


def main() -> None:
    work = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(4)
    lines = ["filename,primary_label,secondary_labels,rating,count"]
    for rel, label, seconds, freq, rating, count in [
            ("amecro/XC1.wav", "amecro", 0.6, 700, "4.5", "3"), ("barswa/XC2.wav", "barswa", 0.5, 900, "-", "4.5"),
            ("barswa/XC3.wav", "barswa", 0.4, 1100, "3", "")]:
        write_tone(work / "audio" / rel, seconds, freq, rng)
        lines.append(f"{rel},{label},[],{rating},{count}")
    lines.append("barswa/XC9.wav,barswa,[],5,1")  # missing: the reject
    (work / "train.csv").write_text("\n".join(lines) + "\n")
    pack_and_record(work, "typed")


def write_tone(path: Path, seconds: float, freq: float, rng: np.random.Generator) -> None:
    """A 16 kHz 16-bit WAV source: a sine of ``freq`` Hz plus noise, ``seconds`` long."""
    t = np.arange(int(seconds * 16000)) / 16000
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), 16000, subtype="PCM_16")


def pack_and_record(work: Path, name: str) -> None:
    """Pack ``work/audio`` with ``work/train.csv`` into ``v4/NAME`` and write ``expected-NAME.json``; remove ``work``."""
    shutil.rmtree(HERE / name, ignore_errors=True)
    opts = PackOptions(sample_rate=16000, mode="recordings", order="sorted", shard_size="64KB")
    shardkit.pack(work / "audio", HERE / name, metadata=work / "train.csv", options=opts)
    doc = {}
    for entry in shardkit.list_samples(HERE / name):
        s = shardkit.read_sample(HERE / name, entry.key)
        doc[entry.key] = {"frames": entry.frames, "label": entry.primary_label, "extra": s.meta["extra"],
                          "data_sha256": hashlib.sha256(s.data).hexdigest(), "ext": s.ext}
    (HERE / f"expected-{name}.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
