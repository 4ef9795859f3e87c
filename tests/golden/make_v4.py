"""How tests/golden/v4/ was made (run once, by hand, when format version 4 was released; never again).

    python tests/golden/make_v4.py

``parent``: three synthetic 16-bit WAV sources packed (wav16 recordings, a plain version-2 pack with its
sources table). ``pseudo``: ``add_labels`` of it — a version-4 manifest referencing the parent's shards
(origin = the parent's version id) and the samples layer ``pseudo``. ``windows``: ``add_labels`` of
``pseudo`` — the windows layer ``win`` (0.25 s windows every 0.125 s) added, ``pseudo`` copied. Each set
has ``expected-<set>.json`` (each sample's data sha256 and label) and each layered set
``layers-<set>.json`` (every layer's classes and rows as float16 values, as float).
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
SOURCES = [("amecro/XC1.wav", "amecro", 0.6, 700), ("barswa/XC2.wav", "barswa", 0.5, 900),
           ("barswa/XC3.wav", "barswa", 0.4, 1100)]


def write(root: Path) -> Path:
    rng = np.random.default_rng(4)
    lines = ["filename,primary_label,secondary_labels"]
    for rel, label, seconds, freq in SOURCES:
        t = np.arange(int(seconds * 16000)) / 16000
        x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
        path = root / "audio" / rel
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
    with shardkit.ShardSet.open(out) as ss:
        layers = {}
        for e in ss.manifest.layers:
            layer = ss.read_layer(e.name)
            names = layer.keys if layer.kind == "samples" else [
                f"{s}@{int(w)}" for s, n in zip(layer.sources, np.diff(layer.source_ptr))
                for w in layer.window[layer.source_ptr[layer.sources.index(s)]:][:n]]
            layers[e.name] = {"classes": layer.classes, "rows": dict(zip(names, layer.values.astype(float).tolist()))}
    if layers:
        (HERE / f"layers-{out.name}.json").write_text(json.dumps(layers, indent=1, sort_keys=True) + "\n")


def main() -> None:
    work = Path(tempfile.mkdtemp())
    csv_path = write(work)
    for name in ("parent", "pseudo", "windows"):
        shutil.rmtree(HERE / name, ignore_errors=True)
    opts = PackOptions(sample_rate=16000, mode="recordings", order="sorted", shard_size="64KB")
    shardkit.pack(work / "audio", HERE / "parent", metadata=csv_path, options=opts)
    keys = [e.key for e in shardkit.list_samples(HERE / "parent")]
    probs = np.array([[0.9, 0.05, 0.5], [0.125, 1.0, 0.0], [0.3333, 0.6667, 0.25]])[: len(keys)]
    shardkit.add_labels(HERE / "parent", HERE / "pseudo", name="pseudo", keys=keys, probs=probs,
                        classes=["amecro", "barswa", "newbird"], note="golden v4")
    sources = [rel for rel, *_ in SOURCES for _ in range(3)]
    starts = [w * 0.125 for _ in SOURCES for w in range(3)]
    win = np.linspace(0, 1, len(sources) * 2).reshape(-1, 2)
    shardkit.add_labels(HERE / "pseudo", HERE / "windows", name="win", sources=sources, start_seconds=starts,
                        probs=win, classes=["barswa", "amecro"], window_seconds=0.25, hop_seconds=0.125)
    for name in ("parent", "pseudo", "windows"):
        expected(HERE / name)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
