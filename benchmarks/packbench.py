"""Pack rate against the pure decode rate of the same files, and shard bytes against raw PCM bytes.

The *decode floor* is what any packer has to do with these files and no more: libsndfile decode
to float32, then shardkit's own mean downmix, soxr HQ resampling to 32 kHz and rounding to int16
(``shardkit.ingest.decode.convert``), in ``workers`` forked processes fed in the pack's own
source order. ``shardkit.pack`` additionally checks each file for truncation, cuts
samples, encodes WAV and msgpack members, CRCs and sha256-hashes them, writes tar shards and
indexes with fsync, and starts its own (spawned) worker processes.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

SAMPLE_RATE = 32000


def warm(paths: list[str]) -> int:
    """Read every file once so that later timings see a warm page cache; returns the bytes read."""
    total = 0
    buf = memoryview(bytearray(8 << 20))
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
    return total


def _decode_only(path: str) -> float:
    """libsndfile decode, then shardkit's own downmix + soxr HQ resample + int16 (``convert``): the work
    every pack has to do for a file, and nothing else. Returns the source's seconds."""
    import soundfile as sf

    from shardkit.ingest.decode import convert

    x, sr = sf.read(path, dtype="float32", always_2d=True)
    return convert(x, sr, SAMPLE_RATE, mono=True).shape[0] / SAMPLE_RATE


def pack_order(src: Path) -> list[str]:
    """The source files in the order pack processes them."""
    from shardkit.ingest.sources import discover

    items, _ = discover(src)
    return [it.path for it in items]


def _cpu() -> tuple[float, float]:
    """(this process's CPU seconds, its reaped children's CPU seconds), user + system."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime


def decode_floor(paths: list[str], workers: int) -> dict[str, Any]:
    cpu0 = _cpu()
    t0 = time.perf_counter()
    if workers > 1:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            secs = sum(pool.map(_decode_only, paths, chunksize=1))
    else:
        secs = sum(_decode_only(p) for p in paths)
    elapsed = time.perf_counter() - t0
    cpu1 = _cpu()
    return {"seconds_audio": round(secs, 3), "elapsed_s": round(elapsed, 3),
            "hours_per_min": round(secs / 3600 / (elapsed / 60), 4), "workers": workers,
            "main_cpu_s": round(cpu1[0] - cpu0[0], 3), "workers_cpu_s": round(cpu1[1] - cpu0[1], 3)}


def run_pack(src: Path, out: Path, mode: str, workers: int, shard_size: str, codec: str = "wav16",
             engine: str = "local") -> dict[str, Any]:
    """Pack ``src`` into ``out`` from scratch, the way ``shardkit pack`` runs it, and describe the result.

    The pack runs in a fresh ``python -m benchmarks.packbench`` process: pack's workers are started with
    ``spawn``, which re-imports the parent's main module in every worker, and the benchmark's own main
    module imports torch (~1.7 s of CPU per worker) where ``shardkit pack`` does not.
    """
    cmd = [sys.executable, "-m", "benchmarks.packbench", str(src), str(out), mode, str(workers), shard_size, codec,
           engine]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if proc.returncode != 0:
        raise RuntimeError(f"pack failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _pack_here(src: Path, out: Path, mode: str, workers: int, shard_size: str, codec: str,
               engine: str = "local") -> dict[str, Any]:
    from shardkit import PackOptions, pack

    opts = PackOptions(sample_rate=SAMPLE_RATE, mode=mode, segment_seconds=5.0, max_seconds=300.0,
                       shard_size=shard_size, codec=codec)
    cpu0 = _cpu()
    t0 = time.perf_counter()
    res = pack(src, out, options=opts, workers=workers, overwrite=True, engine=engine)
    elapsed = time.perf_counter() - t0
    cpu1 = _cpu()
    doc = json.loads((out / "manifest.json").read_text())
    shard_bytes = sum(s["bytes"] for s in doc["shards"])
    index_bytes = sum(s["index_bytes"] for s in doc["shards"])
    frames = int(doc["totals"]["frames"])
    pcm = frames * 2 * int(doc["audio"]["channels"]) if codec == "wav16" else 0  # mel-u8: no PCM
    return {
        "mode": mode, "codec": codec, "engine": engine, "workers": workers, "shard_size": shard_size,
        "elapsed_s": round(elapsed, 3),
        "main_cpu_s": round(cpu1[0] - cpu0[0], 3), "workers_cpu_s": round(cpu1[1] - cpu0[1], 3),
        "samples": res.samples, "shards": res.shards, "rejects": len(res.rejects),
        "stored_seconds": round(res.seconds, 3), "audio_seconds_packed": round(res.seconds_this_run, 3),
        "shard_bytes": shard_bytes, "index_bytes": index_bytes,
        "pcm_bytes": pcm, "tar_overhead": round(shard_bytes / pcm - 1, 6) if pcm else None,
        "tar_index_overhead": round((shard_bytes + index_bytes) / pcm - 1, 6) if pcm else None,
        "shard_files": [str(out / s["name"]) for s in doc["shards"]],
    }


if __name__ == "__main__":  # python -m benchmarks.packbench SRC OUT MODE WORKERS SHARD_SIZE CODEC [ENGINE] → JSON
    a = sys.argv[1:]
    print(json.dumps(_pack_here(Path(a[0]), Path(a[1]), a[2], int(a[3]), a[4], a[5], *a[6:7])))
