"""What ``ShardDataset(targets=...)`` costs: clips/s with a label layer against the same read without one.

    python -m benchmarks.labels [--out DIR] [--files 48] [--rounds 3] [--seconds 6] [--workers 0]

The demo corpus (:func:`shardkit.demo.make_demo_corpus`, real Ogg/FLAC/MP3/WAV, ~15 minutes for 48
files) is packed twice (5 s segments; whole recordings), and each set gets a label layer of
BirdCLEF's width (206 classes): a samples layer with a row for every segment, and a windows layer of
5 s windows over every recording. Each round reads each of the four readers (segments, segments +
targets, recordings with a fresh random 5 s crop per recording, the same + targets) for ``--seconds``
from a warm page cache, interleaved; the ratio targets/plain is taken per round and reported as a range
(the machine is shared: compare within a round). The ``targets=`` rows of ``python -m benchmarks.run``
use :func:`add_bench_layers` on that run's own sets.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
from pathlib import Path

import numpy as np

import shardkit
from benchmarks.common import _log
from benchmarks.harness import measure_all
from benchmarks.methods import Method, shardkit_stream
from shardkit.demo.corpus import make_demo_corpus

#: classes of the benchmark's layers (BirdCLEF 2025's species count)
CLASSES = [f"sp{n:03d}" for n in range(206)]
LAYER = "bench"


def add_bench_layers(seg: Path, rec: Path, out: Path) -> dict[str, Path]:
    """Layered versions of the two sets, next to them (``out``): {"segments", "recordings"} → folder."""
    rng = np.random.default_rng(0)
    made = {}
    with shardkit.ShardSet.open(seg) as ss:
        keys = list(ss.keys)
    made["segments"] = out / f"{seg.name}-labels"
    shutil.rmtree(made["segments"], ignore_errors=True)
    shardkit.add_labels(seg, made["segments"], name=LAYER, keys=keys, classes=CLASSES,
                        probs=rng.random((len(keys), len(CLASSES))))
    with shardkit.ShardSet.open(rec) as ss:
        # a recording longer than the pack's max_seconds is several samples of one source: one window grid
        # per source, up to the end of its last sample
        ends = np.zeros(len(ss.source_names))
        np.maximum.at(ends, ss.source_id, ss.start_seconds + ss.frames * ss.seconds_per_frame)
        sources, starts = [], []
        for s in np.unique(ss.source_id).tolist():
            for w in range(int(np.ceil(ends[s] / 5.0))):
                sources.append(ss.source_names[s])
                starts.append(w * 5.0)
    made["recordings"] = out / f"{rec.name}-labels"
    shutil.rmtree(made["recordings"], ignore_errors=True)
    shardkit.add_labels(rec, made["recordings"], name=LAYER, sources=sources, start_seconds=starts, classes=CLASSES,
                        probs=rng.random((len(sources), len(CLASSES))), window_seconds=5.0)
    return made


def methods(seg: Path, rec: Path, layered: dict[str, Path], workers: int, batch: int, crops: int) -> list[Method]:
    """The four readers of the module docstring at ``workers``."""
    rec_kw = {"partial": "drop", "crops_per_recording": crops}
    return [
        Method("shardkit-segments", "segments", workers, "shardkit",
               make=functools.partial(shardkit_stream, seg, workers, batch=batch)),
        Method("shardkit-segments-targets", "segments + targets (samples layer, 206 classes)", workers, "shardkit",
               make=functools.partial(shardkit_stream, layered["segments"], workers, batch=batch, targets=LAYER)),
        Method("shardkit-recordings", "recordings, random 5 s crops", workers, "shardkit",
               make=functools.partial(shardkit_stream, rec, workers, batch=batch, **rec_kw)),
        Method("shardkit-recordings-targets", "recordings + targets (5 s windows, overlap-weighted mean)", workers,
               "shardkit", make=functools.partial(shardkit_stream, layered["recordings"], workers, batch=batch,
                                                  targets=LAYER, **rec_kw)),
    ]


def target_ratios(results: list[dict]) -> dict[str, list[float]]:
    """Per round, clips/s with targets over without, for each mode and worker count."""
    out: dict[str, list[float]] = {}
    for r in results:
        if not r["method"].endswith("-targets") or r["status"] != "ok":
            continue
        base = next((b for b in results if b["method"] == r["method"][: -len("-targets")]
                     and b["workers"] == r["workers"] and b["status"] == "ok"), None)
        if base is not None:
            key = f"{r['method'][len('shardkit-'):]}/plain_{r['workers']}workers"
            out[key] = [round(t / p, 4) for t, p in zip(r["runs"], base["runs"]) if p]
    return out


def cpu_cost(plain: Path, layered: Path, *, batch: int, rounds: int, crops: int = 1) -> dict[str, float]:
    """CPU seconds per batch (process time, 1 reading thread, the same items) of the plain and the layered
    reader, alternating batch by batch: a figure the machine's load disturbs far less than clips/s."""
    import time

    kw = {"batch_size": batch, "crop_seconds": 5.0, "seed": 0, "read_threads": 1, "crops_per_recording": crops}
    readers = [shardkit.ShardDataset(plain, **kw), shardkit.ShardDataset(layered, targets=LAYER, **kw)]
    rp = readers[0].plan()
    order = readers[0].order(0)
    spent = [[], []]
    for n in range(rounds * len(rp)):
        positions, valid = rp.positions(n % len(rp))
        for k, ds in enumerate(readers if n % 2 else readers[::-1]):
            t0 = time.process_time()
            ds.reader.read(order[positions], valid, 0)
            spent[k if n % 2 else 1 - k].append(time.process_time() - t0)
    plain_s, layered_s = (float(np.median(x)) for x in spent)
    return {"plain_cpu_ms": round(plain_s * 1e3, 3), "targets_cpu_ms": round(layered_s * 1e3, 3),
            "cost": round(layered_s / plain_s - 1, 4), "batches": len(spent[0])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench-labels"))
    ap.add_argument("--files", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: the measuring process)")
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args(argv)
    out = args.out
    csv_path = out / "corpus" / "train_metadata.csv"
    if not csv_path.exists():
        _log(f"corpus: {args.files} demo recordings ...")
        make_demo_corpus(out / "corpus", n_files=args.files)
    sets = {}
    for mode in ("segments", "recordings"):
        sets[mode] = out / "sets" / mode
        if not (sets[mode] / "manifest.json").exists():
            shardkit.pack(out / "corpus" / "train_audio", sets[mode], metadata=csv_path, workers=2,
                          options=shardkit.PackOptions(mode=mode, shard_size="64MB"))
    layered = add_bench_layers(sets["segments"], sets["recordings"], out / "sets")
    n_rec = len(shardkit.ShardSet.open(sets["recordings"]))
    crops = max(1, -(-4 * args.batch // n_rec))
    ms = methods(sets["segments"], sets["recordings"], layered, args.workers, args.batch, crops)
    results = [r.to_dict() for r in measure_all(ms, seconds=args.seconds, max_clips=1e9, repeats=args.rounds,
                                                log=_log)]
    rat = target_ratios(results)
    cpu = {mode: cpu_cost(sets[mode], layered[mode], batch=args.batch, rounds=args.rounds,
                          crops=crops if mode == "recordings" else 1) for mode in sets}
    for mode, c in cpu.items():
        _log(f"{mode}: CPU per batch of {args.batch} {c['plain_cpu_ms']:.2f} ms, with targets "
             f"{c['targets_cpu_ms']:.2f} ms (+{c['cost']:.1%}; medians of {c['batches']} alternating batches)")
    doc = {"rounds": args.rounds, "seconds": args.seconds, "workers": args.workers, "batch": args.batch,
           "results": results, "ratios": rat, "cpu": cpu}
    (out / "results-labels.json").write_text(json.dumps(doc, indent=1))
    for key, values in rat.items():
        lo, hi = min(values), max(values)
        _log(f"{key}: targets/plain clips/s {lo:.3f}–{hi:.3f} over {len(values)} rounds "
             f"(cost {1 - hi:.1%}–{1 - lo:.1%}; goal ≤ 10 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
