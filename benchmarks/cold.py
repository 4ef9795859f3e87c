"""Cold page cache: clips/s of 5 s int16 clips in 1 process when no byte read is cached yet.

    python -m benchmarks.cold --segments DIR --recordings DIR [--out DIR] [--seconds S] [--repeats N]

(``python -m benchmarks.run`` runs it on the sets it packed.) Before every run each file the method
reads is written back (``os.sync``) and dropped from the page cache with
``posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)``; the share still resident is checked with
``mincore`` and reported (``resident_before``). A run then reads for at most ``seconds`` and at most
80 % of one pass over the data, so it never reaches bytes it read itself (the cache stays cold).

Methods: ``cat`` (``readinto`` an 8 MiB buffer over the segment shards, front to back: the 1.00
reference), shardkit segments shuffled (read-ahead off = 0.3's reader, ``fadvise``, ``read``),
shardkit recordings + random crops, the seed's presplit path (one 16-bit WAV file per 5 s clip,
written once from the segments set, read in random order with soundfile) and webdataset over the
segment shards. Peak RSS over the run is reported against the RSS before it (``rss_added_kb``).
Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import mmap
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import _log
from benchmarks.methods import BATCH, CLIP_BYTES, CLIP_SECONDS, raw_read, webdataset_stream
from benchmarks.rss import peak_kb, reset_peak, rss_kb

#: share of one pass over a method's data a cold run may read (beyond it the bytes could be cached)
MAX_PASS = 0.8
#: target of issue 10: shuffled shardkit ≥ this × the cold sequential read
COLD_TARGET = 0.9


# ------------------------------------------------------------------------------------ page cache


def drop_cache(paths: Sequence[str | os.PathLike[str]]) -> None:
    """Write dirty pages back, then drop every page of ``paths`` from the page cache."""
    os.sync()
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def resident_share(paths: Sequence[str | os.PathLike[str]]) -> float | None:
    """Share of the pages of ``paths`` in the page cache (``mincore``), or None where it cannot be asked."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    resident = total = 0
    for p in paths:
        size = os.path.getsize(p)
        if not size:
            continue
        fd = os.open(p, os.O_RDONLY)
        try:
            addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        finally:
            os.close(fd)
        if addr in (None, ctypes.c_void_p(-1).value):
            return None
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = (ctypes.c_ubyte * pages)()
        ok = libc.mincore(addr, size, vec) == 0
        libc.munmap(addr, size)
        if not ok:
            return None
        resident += int(np.frombuffer(vec, dtype=np.uint8).__and__(1).sum())
        total += pages
    return resident / total if total else 0.0


# ------------------------------------------------------------------------------------ methods


def shardkit_cold(path: Path, *, readahead: str, crops: int = 1, batch: int = BATCH) -> Iterator[float]:
    """``ShardDataset`` (5 s crops, shuffled) on a :class:`LocalStorage` with ``readahead`` (``"off"``:
    no hints at all, the 0.3 reader)."""
    from shardkit import ShardDataset
    from shardkit.read import ShardSet
    from shardkit.storage.local import LocalStorage

    ss = ShardSet.open(path, storage=LocalStorage(path, readahead="off" if readahead == "off" else readahead))
    ds = ShardDataset(ss, batch_size=batch, crop_seconds=CLIP_SECONDS, shuffle=True, seed=0,
                      partial="drop" if crops > 1 else None, crops_per_recording=crops,
                      read_ahead=readahead != "off")
    try:
        for epoch in range(1 << 30):
            ds.set_epoch(epoch)
            for b in ds:
                yield float(b["valid"].sum())
    finally:
        ds.close()


def write_presplit(segments: Path, out: Path) -> list[str]:
    """The seed's layout: one 16-bit WAV file per 5 s segment (written once; reused when present)."""
    from shardkit.read import ShardSet

    out.mkdir(parents=True, exist_ok=True)
    done = out / "done"
    with ShardSet.open(segments) as ss:
        paths = [str(out / f"{i:07d}.wav") for i in range(len(ss))]
        if not done.exists():
            for i, p in enumerate(paths):
                Path(p).write_bytes(ss.read_data_member(i))
            done.write_text(str(len(paths)))
    return paths


def presplit_stream(paths: Sequence[str], batch: int = BATCH) -> Iterator[float]:
    """One file per clip in random order, each read whole with soundfile into an int16 (B, T) batch."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    while True:
        order = rng.permutation(len(paths))
        for start in range(0, len(paths) - batch + 1, batch):
            clips = [sf.read(paths[k], dtype="int16")[0] for k in order[start:start + batch]]
            np.stack([c[:len(clips[0])] for c in clips])
            yield float(len(clips))


# ------------------------------------------------------------------------------------ runs


def cold_run(make: Callable[[], Iterator[float]], files: Sequence[str], *, seconds: float, max_clips: float
             ) -> dict[str, Any]:
    """Drop ``files`` from the cache, then time ``make()``'s clips (the first step included: it is cold)."""
    drop_cache(files)
    resident = resident_share(files)
    rss0 = rss_kb()
    reset = reset_peak()
    t0 = time.perf_counter()
    it = make()
    clips, elapsed = 0.0, 0.0
    try:
        while elapsed < seconds and clips < max_clips:
            clips += next(it)
            elapsed = time.perf_counter() - t0
    finally:
        it.close()  # type: ignore[attr-defined]
    return {"clips": clips, "seconds": elapsed, "clips_per_s": clips / elapsed if elapsed else 0.0,
            "resident_before": None if resident is None else round(resident, 4),
            "rss_added_kb": max(0, peak_kb() - rss0) if reset else None}


def methods(segments: Path, recordings: Path, presplit: list[str], batch: int) -> list[dict[str, Any]]:
    """The cold methods: name, label, what it reads (files) and one pass over it (clips)."""
    seg_shards = sorted(str(p) for p in segments.glob("*.tar"))
    rec_shards = sorted(str(p) for p in recordings.glob("*.tar"))
    seg_clips = sum(os.path.getsize(p) for p in seg_shards) / CLIP_BYTES
    from shardkit.read import ShardSet

    with ShardSet.open(recordings) as ss:
        rec_items = len(ss)
    rows = [("cat", "readinto() an 8 MiB buffer over the segment shards, front to back (the 1.00 reference)",
             functools.partial(raw_read, seg_shards), seg_shards, seg_clips)]
    for mode, what in (("off", "no read-ahead (0.3)"), ("fadvise", "read-ahead: fadvise(WILLNEED)"),
                       ("read", "read-ahead: sequential reads in a thread")):
        rows.append((f"shardkit-segments-{mode}", f"ShardDataset, segments, shuffled; {what}",
                     functools.partial(shardkit_cold, segments, readahead=mode, batch=batch), seg_shards, seg_clips))
    rows.append(("shardkit-recordings", "ShardDataset, recordings + random 5 s crops, shuffled; read-ahead: fadvise",
                 functools.partial(shardkit_cold, recordings, readahead="fadvise", batch=batch), rec_shards,
                 rec_items))
    rows.append(("presplit-wav", "one 16-bit WAV file per 5 s clip, random order, soundfile (the seed's path)",
                 functools.partial(presplit_stream, presplit, batch), presplit, len(presplit)))
    rows.append(("webdataset", "WebDataset over the segment shards (shuffle(1000), soundfile .wav decode)",
                 functools.partial(webdataset_stream, seg_shards, 0, batch=batch), seg_shards, seg_clips))
    return [{"method": n, "label": label, "make": make, "files": files, "pass_clips": clips}
            for n, label, make, files, clips in rows]


def measure_cold(segments: Path, recordings: Path, work: Path, *, seconds: float, repeats: int,
                 batch: int = BATCH, log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Every cold method, round-robin, best of ``repeats``; ratios to ``cat`` and the target."""
    presplit = write_presplit(segments, work / "presplit-wav")
    table = methods(segments, recordings, presplit, batch)
    runs: dict[str, list[dict[str, Any]]] = {m["method"]: [] for m in table}
    for rnd in range(repeats):
        log(f"  cold round {rnd + 1} of {repeats}")
        for m in table:
            r = cold_run(m["make"], m["files"], seconds=seconds, max_clips=MAX_PASS * m["pass_clips"])
            runs[m["method"]].append(r)
            log(f"  {m['method']:<26} {r['clips_per_s']:>9.1f} clips/s  (resident before {r['resident_before']}, "
                f"+RSS {r['rss_added_kb']} kB)")
    results = []
    for m in table:
        best = max(runs[m["method"]], key=lambda r: r["clips_per_s"])
        results.append({"method": m["method"], "label": m["label"], **{k: best[k] for k in best},
                        "clips_per_s": round(best["clips_per_s"], 1),
                        "runs": [round(r["clips_per_s"], 1) for r in runs[m["method"]]]})
    ref = next(r["clips_per_s"] for r in results if r["method"] == "cat") or 1e-9
    for r in results:
        r["vs_cat"] = round(r["clips_per_s"] / ref, 3)
    shuffled = next(r for r in results if r["method"] == "shardkit-segments-fadvise")
    return {"results": results, "seconds": seconds, "repeats": repeats, "max_pass": MAX_PASS,
            "target": {"target": f"shuffled shardkit (segments) ≥ {COLD_TARGET}× the cold sequential read",
                       "shown": f"{shuffled['vs_cat']:.2f}×", "met": shuffled["vs_cat"] >= COLD_TARGET}}


def markdown(cold: dict[str, Any]) -> str:
    """The cold table for the report."""
    rows = ["| path (cold cache, 1 process) | clips/s | × `cat` | runs | +RSS MB |", "|---|---|---|---|---|"]
    for r in cold["results"]:
        rss = "–" if r["rss_added_kb"] is None else f"{r['rss_added_kb'] / 1024:.0f}"
        rows.append(f"| {r['method']}: {r['label']} | {r['clips_per_s']:,.0f} | {r['vs_cat']:.2f} | "
                    f"{', '.join(f'{x:,.0f}' for x in r['runs'])} | {rss} |")
    t = cold["target"]
    return "\n".join(rows) + f"\n\nTarget: {t['target']}: {t['shown']} — {'met' if t['met'] else 'missed'}.\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cold", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segments", type=Path, required=True)
    ap.add_argument("--recordings", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch", type=int, default=BATCH)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cold = measure_cold(args.segments, args.recordings, args.out, seconds=args.seconds, repeats=args.repeats,
                        batch=args.batch)
    (args.out / "cold.json").write_text(json.dumps(cold, indent=1) + "\n")
    _log(markdown(cold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
