"""``python -m benchmarks.pack_dask``: ``shardkit pack --engine dask`` against the local engine on the same
corpus in the same run, at 1 and 2 workers, as rates (audio hours per minute) and ratios; plus the three
numbers of the scaling model in docs/dask.md: the per-source decode cost, the scheduler's overhead per
task and the bandwidth at which the driver receives samples from the workers.

Each pack runs in a fresh process (``benchmarks.packbench``), from scratch, with a warm page cache; the
local and the Dask pack of each worker count alternate, best of ``--rounds``. The Dask pack's time
includes starting and closing its LocalCluster, as a user sees it. Its shards are checked to be
byte-identical to the local pack's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from benchmarks import corpus as corpus_mod
from benchmarks import packbench
from benchmarks.common import _log, _md_table, machine


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        h.update(p.name.encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def compare_engines(corpus: corpus_mod.Corpus, out: Path, workers: list[int], rounds: int,
                    shard_size: str) -> dict[str, Any]:
    """Best-of-``rounds`` pack of the corpus by each engine at each worker count (recordings mode)."""
    order = packbench.pack_order(corpus.src)
    best: dict[str, dict[str, Any]] = {}
    digests: dict[str, str] = {}
    for k in range(rounds):
        for w in workers:
            for engine in ("local", "dask"):
                packbench.warm(order)
                dest = out / f"{engine}-{w}"
                run = packbench.run_pack(corpus.src, dest, "recordings", w, shard_size, engine=engine)
                run["hours_per_min"] = round(run["audio_seconds_packed"] / 3600 / (run["elapsed_s"] / 60), 4)
                digests[f"{engine}-{w}"] = _digest(dest)
                _log(f"  round {k + 1}: {engine:<5} × {w}: {run['elapsed_s']:.2f} s, "
                     f"{run['hours_per_min']:.3f} audio h/min")
                name = f"{engine}-{w}"
                if name not in best or run["elapsed_s"] < best[name]["elapsed_s"]:
                    best[name] = {k2: v for k2, v in run.items() if k2 != "shard_files"}
    identical = len(set(digests.values())) == 1
    ratios = {w: round(best[f"local-{w}"]["elapsed_s"] / best[f"dask-{w}"]["elapsed_s"], 3) for w in workers}
    cpu = {w: round(_cpu(best[f"local-{w}"]) / _cpu(best[f"dask-{w}"]), 3) for w in workers}
    return {"runs": best, "ratio_dask_over_local": ratios, "cpu_ratio_dask_over_local": cpu,
            "identical_bytes": identical}


def _cpu(run: dict[str, Any]) -> float:
    """CPU seconds of a pack, its own and its worker processes' (a measure a busy machine disturbs less)."""
    return run["main_cpu_s"] + run["workers_cpu_s"]


def overheads(tasks: int, blob_mb: int, blobs: int) -> dict[str, Any]:
    """On a LocalCluster of 2 processes: its start, the scheduler's cost per task (no-op tasks kept
    ``IN_FLIGHT`` × 2 ahead and consumed in order, as pack does), and the driver's receive bandwidth
    (``blobs`` results of ``blob_mb`` MB, consumed in order)."""
    import distributed

    from shardkit.write.dask_engine import IN_FLIGHT

    t0 = time.perf_counter()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        start_s = time.perf_counter() - t0
        client.submit(abs, -1, pure=False).result()  # connections up
        per_task = _in_order(client, abs, [-i for i in range(tasks)], IN_FLIGHT * 2) / tasks
        size = blob_mb << 20
        recv = _in_order(client, bytes, [size] * blobs, IN_FLIGHT * 2)
    return {"cluster_start_s": round(start_s, 3), "task_overhead_ms": round(per_task * 1e3, 3),
            "driver_receive_mb_s": round(blobs * blob_mb / recv, 1), "tasks": tasks, "blob_mb": blob_mb}


def _in_order(client: Any, fn: Any, args: list[Any], window: int) -> float:
    """Seconds to run ``fn(arg)`` for every arg as tasks, ``window`` ahead, results taken in order."""
    t0 = time.perf_counter()
    pending: list[Any] = []
    it = iter(enumerate(args))
    for _ in range(window):
        nxt = next(it, None)
        if nxt is not None:
            pending.append(client.submit(fn, nxt[1], pure=False, priority=-nxt[0]))
    while pending:
        pending.pop(0).result()
        nxt = next(it, None)
        if nxt is not None:
            pending.append(client.submit(fn, nxt[1], pure=False, priority=-nxt[0]))
    return time.perf_counter() - t0


def report(doc: dict[str, Any]) -> str:
    """The Markdown table of the run (pasted into docs/dask.md)."""
    rows = []
    for r in sorted(doc["engines"]["runs"].values(), key=lambda r: (r["workers"], r["engine"])):
        rows.append([r["engine"], str(r["workers"]), f"{r['elapsed_s']:.2f}", f"{r['hours_per_min']:.3f}",
                     f"{r['main_cpu_s']:.1f}", f"{r['workers_cpu_s']:.1f}"])
    o = doc["overheads"]
    e = doc["engines"]
    lines = [_md_table(["engine", "workers", "pack s", "audio h/min", "driver CPU s", "workers CPU s"], rows), "",
             "dask / local, rate: " + ", ".join(f"{w} workers {x:.3f}×" for w, x in e["ratio_dask_over_local"].items())
             + "; CPU (local CPU s / dask CPU s): "
             + ", ".join(f"{w} workers {x:.3f}×" for w, x in e["cpu_ratio_dask_over_local"].items()),
             f"bytes identical across engines and worker counts: {doc['engines']['identical_bytes']}",
             f"LocalCluster start {o['cluster_start_s']:.2f} s; scheduler overhead {o['task_overhead_ms']:.2f} ms "
             f"a task; driver receives {o['driver_receive_mb_s']:.0f} MB/s"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.pack_dask", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, help="a folder of audio files instead of the synthetic corpus")
    ap.add_argument("--quick", action="store_true", help="tiny corpus, one round (smoke run)")
    ap.add_argument("--out", type=Path, default=Path("bench-out"), help="output folder (default bench-out/)")
    ap.add_argument("--rounds", type=int, help="packs per engine and worker count, the best counts (default 2)")
    args = ap.parse_args(argv)
    out = args.out.resolve()
    corpus = corpus_mod.from_source(args.source, log=_log) if args.source else \
        corpus_mod.build(out / "corpus", corpus_mod.QUICK if args.quick else corpus_mod.FULL, log=_log)
    c = corpus.summary()
    _log(f"corpus: {c['files']} files, {c['hours']:.2f} h; packing with each engine at 1 and 2 workers ...")
    rounds = args.rounds or (1 if args.quick else 2)
    doc = {"machine": machine(), "corpus": c,
           "engines": compare_engines(corpus, out / "pack-dask", [1, 2], rounds, "1MB" if args.quick else "128MB")}
    doc["engines"]["per_source_decode_s"] = round(
        doc["engines"]["runs"]["local-1"]["elapsed_s"] / max(1, c["files"]), 4)
    doc["overheads"] = overheads(200 if args.quick else 2000, 4, 8 if args.quick else 64)
    (out / "pack_dask.json").write_text(json.dumps(doc, indent=1))
    _log(report(doc))
    _log(f"wrote {out / 'pack_dask.json'}")


if __name__ == "__main__":
    main()
