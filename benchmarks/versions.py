"""Dataset versions: bytes written and reused by ``shardkit update`` against a fresh full pack.

    python -m benchmarks.versions                 # the demo corpus's season + "BirdCLEF next year"
    python -m benchmarks.versions --files 400     # a larger scaled-down corpus

Two runs on real encoded audio (:func:`shardkit.demo.make_demo_corpus`): (1) the demo corpus's
"season": +3 recordings, 1 relabelled, 1 removed, 1 re-recorded; (2) a synthetic "BirdCLEF next
year" on ``--files`` recordings: +10 % recordings, 2 % relabelled, 1 % removed. Each prints bytes
written by the update, bytes of the parent reused by reference, bytes a fresh full pack of the new
sources writes, and both wall times (same machine, same run). The shares are what extrapolates:
written bytes follow the new audio, relabels and removals write only the manifest and the sources
table, so the share stays put as the corpus grows; ``--scale-gb`` turns it into bytes.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import tempfile
import time
from pathlib import Path

import shardkit
from shardkit.demo.corpus import make_demo_corpus
from shardkit.synth import chirp, write_audio


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        r = csv.DictReader(fh)
        return list(r.fieldnames or []), list(r)


def _write(path: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def change(root: Path, add: int, relabel: int, remove: int, rerecord: int, seed: int = 1) -> None:
    """Apply a season's change to ``root/train_metadata.csv`` and ``root/train_audio`` in place."""
    rng = random.Random(seed)
    csv_path = root / "train_metadata.csv"
    fields, rows = _rows(csv_path)
    for row in rng.sample(rows, remove):
        rows.remove(row)
    labels = sorted({r["primary_label"] for r in rows})
    for row in rng.sample(rows, relabel):
        row["primary_label"] = rng.choice([x for x in labels if x != row["primary_label"]])
    for row in rng.sample(rows, rerecord):
        write_audio(root / "train_audio" / row["filename"], chirp(7.0, 32000, 1, rng.randrange(1 << 30)), 32000)
    for n in range(add):
        base = rng.choice(rows)
        rel = f"{base['primary_label']}/XN{seed}{n:05d}.ogg"
        write_audio(root / "train_audio" / rel, chirp(rng.uniform(5, 40), 32000, 1, 1000 + n), 32000)
        rows.append({**base, "filename": rel})
    _write(csv_path, fields, rows)


def measure(root: Path, files: int, add: int, relabel: int, remove: int, rerecord: int, shard: str) -> dict:
    make_demo_corpus(root / "corpus", n_files=files, workers=2)
    src, csv_path = root / "corpus" / "train_audio", root / "corpus" / "train_metadata.csv"
    opts = shardkit.PackOptions(sample_rate=32000, shard_size=shard)
    first = shardkit.pack(src, root / "v1", metadata=csv_path, options=opts, workers=2)
    change(root / "corpus", add, relabel, remove, rerecord)
    t0 = time.perf_counter()
    up = shardkit.update(src, root / "v1", root / "v2", metadata=csv_path, workers=2)
    t_up = time.perf_counter() - t0
    t0 = time.perf_counter()
    fresh = shardkit.pack(src, root / "fresh", metadata=csv_path, options=opts, workers=2)
    t_fresh = time.perf_counter() - t0
    return {"v1_bytes": first.bytes, "v1_shards": first.shards, "written": up.bytes_written,
            "reused": up.bytes_reused, "new_shards": up.new_shards, "reused_shards": up.reused_shards,
            "fresh": fresh.bytes, "t_update": t_up, "t_fresh": t_fresh, "hours": fresh.hours,
            "result": up}


def report(name: str, m: dict, scale_gb: float) -> None:
    up = m["result"]
    share = m["written"] / m["fresh"]
    print(f"== {name}")
    print(f"  parent: {m['v1_shards']} shards, {m['v1_bytes'] / 1e6:.1f} MB; new version: {m['hours']:.2f} h")
    print(f"  sources: +{len(up.added)} added, {len(up.changed)} re-recorded, {len(up.removed)} removed, "
          f"{len(up.relabelled)} relabelled")
    print(f"  update wrote {m['written'] / 1e6:.2f} MB ({m['new_shards']} shards), reused {m['reused'] / 1e6:.2f} MB "
          f"({m['reused_shards']} shards, not copied) in {m['t_update']:.1f} s")
    print(f"  a fresh full pack writes {m['fresh'] / 1e6:.2f} MB in {m['t_fresh']:.1f} s")
    print(f"  written / fresh = {share:.3f} (upload {1 / max(share, 1e-9):.1f}x less); "
          f"update time / fresh pack time = {m['t_update'] / m['t_fresh']:.2f}")
    print(f"  extrapolated to a {scale_gb:.0f} GB set: ~{share * scale_gb:.1f} GB to write and upload "
          f"instead of {scale_gb:.0f} GB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=200, help="recordings of the scaled-down corpus [200]")
    ap.add_argument("--scale-gb", type=float, default=100.0, help="size of the set to extrapolate to [100]")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        demo = measure(Path(tmp) / "demo", 48, add=3, relabel=1, remove=1, rerecord=1, shard="4MB")
        report("demo corpus season (48 recordings)", demo, args.scale_gb)
        n = args.files
        big = measure(Path(tmp) / "next", n, add=max(1, n // 10), relabel=max(1, n // 50), remove=max(1, n // 100),
                      rerecord=0, shard="8MB")
        report(f"BirdCLEF next year, scaled down ({n} recordings: +10 %, 2 % relabelled, 1 % removed)", big,
               args.scale_gb)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
