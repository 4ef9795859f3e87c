"""Cold page cache: clips/s of 5 s int16 clips in 1 process when no byte read is cached yet.

    python -m benchmarks.cold [--segments DIR --recordings DIR] [--out DIR] [--seconds S] [--repeats N]
                              [--no-throttle]

Without ``--segments``/``--recordings`` it packs both sets (one shard each, wav16) from the benchmarks'
corpus under OUT (default bench-out/; reused while unchanged). ``python -m benchmarks.run`` runs
:func:`measure_cold` on the sets it packed.

**The disk.** A raw cloud VM disk's cold reads vary 3× within an hour; a persistent disk as training
VMs read it is bandwidth- and IOPS-limited. So the process first puts itself into a cgroup-v1 blkio
group that throttles the disk holding the shards to :data:`THROTTLE_BPS` (250 MiB/s) and
:data:`THROTTLE_IOPS` (400) reads (:func:`throttled`; root only; skipped with a message where it
cannot be set up), and leaves it at the end.

Before every cold run each file the method reads is written back (``os.sync``) and dropped from the
page cache with ``posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)``; the share still resident is
checked with ``mincore`` and reported (``resident_before``). ``cat`` and shardkit then read **whole
passes / epochs** until ``seconds`` have passed, dropping the files again at each new one: a run cut
at a time would end inside an epoch whose next shuffle window the read-ahead has already started
fetching, charging the reader for bytes no batch of the run took (up to a window — ~200 MB, 0.8 s of
this disk — per run), which a training run that reads its epochs to the end never pays. The others
stop at ``seconds`` or 80 % of one pass, so they never reach bytes they read themselves.
Warm runs (the A/B of read-ahead on a warm page cache) read the files once
first and time steady reading, after the first batch.

Methods: ``cat`` (``readinto`` an 8 MiB buffer over the segment shards, front to back: the 1.00
reference), shardkit segments and recordings + random crops, shuffled, each with the library's default
options (``default``), with read-ahead off (``off``: the 0.3 reader, the default until 0.4) and with
``read_ahead=True`` (``fadvise``); the seed's presplit path (one 16-bit WAV file per 5 s clip,
written once from the segments set, read in random order with soundfile) and webdataset over the
segment shards. Every method runs once per round, ``repeats`` rounds; figures are ranges over the
rounds. Peak RSS over the run is reported against the RSS before it (``rss_added_kb``).
Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
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
#: what ``cat`` and shardkit's streams yield at the end of each pass / epoch (a cold run ends on one)
PASS_END = None
#: target of issue 10: shuffled shardkit ≥ this × the cold sequential read
COLD_TARGET = 0.9
#: the throttled disk: a cloud persistent disk's read limits (bytes/s, reads/s)
THROTTLE_BPS = 250 << 20
THROTTLE_IOPS = 400
BLKIO = Path("/sys/fs/cgroup/blkio")
#: the sets' shard size (one shard each for the benchmark corpus)
SHARD_SIZE = "2GB"
READAHEAD_LABELS = {"default": "default options", "off": "read-ahead off (the reader until 0.4)",
                    "fadvise": "read_ahead=True (fadvise WILLNEED)"}


# ------------------------------------------------------------------------------------ page cache


def drop_cache(paths: Sequence[str | os.PathLike[str]], sync: bool = True) -> None:
    """Write dirty pages back (``sync``), then drop every page of ``paths`` from the page cache."""
    if sync:
        os.sync()
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def resident_share(paths: Sequence[str | os.PathLike[str]]) -> float | None:
    """Share of the pages of ``paths`` in the page cache (``mincore``), or None where it cannot be asked."""
    from shardkit.storage.local import page_cache_share

    resident = total = 0.0
    for p in paths:
        size = os.path.getsize(p)
        share = page_cache_share(p)
        if share is None:
            return None
        resident += share * size
        total += size
    return resident / total if total else 0.0


# ------------------------------------------------------------------------------------ methods


def shardkit_cold(path: Path, *, readahead: str, crops: int = 1, batch: int = BATCH,
                  redrop: Sequence[str] = ()) -> Iterator[float]:
    """``ShardDataset`` (5 s crops, shuffled). ``readahead``: ``"default"`` (the path alone: the library's
    default options), ``"off"`` (no hints at all, the 0.3 reader), ``"fadvise"`` (``read_ahead=True``)."""
    from shardkit import ShardDataset
    from shardkit.read import ShardSet
    from shardkit.storage.local import LocalStorage

    kw: dict[str, Any] = {}
    source: Any = str(path)
    if readahead != "default":
        source = ShardSet.open(path, storage=LocalStorage(path, readahead=readahead))
        kw["read_ahead"] = readahead != "off"
    ds = ShardDataset(source, batch_size=batch, crop_seconds=CLIP_SECONDS, shuffle=True, seed=0,
                      partial="drop" if crops > 1 else None, crops_per_recording=crops, **kw)
    try:
        for epoch in range(1 << 30):
            if epoch and redrop:
                drop_cache(redrop, sync=False)  # every epoch cold, so a run can last several
            ds.set_epoch(epoch)
            for b in ds:
                yield float(b["valid"].sum())
            yield PASS_END
    finally:
        ds.close()


def cat_cold(paths: Sequence[str]) -> Iterator[float]:
    """``cat`` over ``paths`` pass after pass, each pass after the first from a page cache dropped again."""
    buf = memoryview(bytearray(8 << 20))
    for n_pass in range(1 << 30):
        if n_pass:
            drop_cache(paths, sync=False)
        for p in paths:
            with open(p, "rb", buffering=0) as f:
                while n := f.readinto(buf):
                    yield n / CLIP_BYTES
        yield PASS_END


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


# ------------------------------------------------------------------------------------ the throttled disk


def _disk_of(path: Path) -> str:
    """``MAJ:MIN`` of the whole disk holding ``path`` (a partition's parent disk)."""
    dev = os.stat(path).st_dev
    mm = f"{os.major(dev)}:{os.minor(dev)}"
    sys_dev = Path(f"/sys/dev/block/{mm}")
    if (sys_dev / "partition").exists():
        mm = (sys_dev.resolve().parent / "dev").read_text().strip()
    return mm


@contextlib.contextmanager
def throttled(path: Path, *, bps: int = THROTTLE_BPS, iops: int = THROTTLE_IOPS,
              log: Callable[[str], None] = _log) -> Iterator[dict[str, Any]]:
    """Run the body in a cgroup-v1 blkio group that caps reads of ``path``'s disk at ``bps`` bytes/s and
    ``iops`` reads/s (this process and every thread and child it starts); a dict says what was set up.
    Where it cannot be (no blkio v1 hierarchy, not root, no such device) the body runs unthrottled and
    the dict's ``note`` says why."""
    info: dict[str, Any] = {"throttled": False, "bps": bps, "iops": iops}
    group = BLKIO / f"shardkit-bench-{os.getpid()}"
    try:
        info["device"] = _disk_of(path)
        group.mkdir(exist_ok=True)
        (group / "blkio.throttle.read_bps_device").write_text(f"{info['device']} {bps}\n")
        (group / "blkio.throttle.read_iops_device").write_text(f"{info['device']} {iops}\n")
        (group / "cgroup.procs").write_text(f"{os.getpid()}\n")
        info["throttled"] = True
    except OSError as exc:
        info["note"] = f"not throttled ({exc.strerror or exc}: {getattr(exc, 'filename', '') or BLKIO}); cold " \
                       "reads of a raw VM disk vary 3x, so read these figures as anecdotes"
        log(f"cold: {info['note']}")
    else:
        log(f"cold: reads of disk {info['device']} throttled to {bps / 2**20:.0f} MiB/s and {iops} IOPS "
            f"(blkio cgroup {group.name})")
    try:
        yield info
    finally:
        if info["throttled"]:
            (BLKIO / "cgroup.procs").write_text(f"{os.getpid()}\n")
        with contextlib.suppress(OSError):
            group.rmdir()


# ------------------------------------------------------------------------------------ runs


def timed_run(make: Callable[[], Iterator[float | None]], files: Sequence[str], *, cold: bool, seconds: float,
              max_clips: float, whole: bool = False) -> dict[str, Any]:
    """Drop ``files`` from the cache (``cold``) or read them once (warm), then time ``make()``'s clips
    (cold: the first step included; warm: after the first step). ``whole``: stop at the first
    :data:`PASS_END` after ``seconds`` (whole passes), else at the first step after ``seconds``."""
    if cold:
        drop_cache(files)
    else:
        for _ in raw_read_once(files):
            pass
    resident = resident_share(files)
    rss0 = rss_kb()
    reset = reset_peak()
    it = make()
    if not cold:
        next(it)  # warm: the A/B is of steady reading, not of opening the set
    t0, cpu0 = time.perf_counter(), time.process_time()
    clips, elapsed, passes = 0.0, 0.0, 0
    try:
        while clips < max_clips:
            got = next(it)
            elapsed = time.perf_counter() - t0
            if got is PASS_END:
                passes += 1
                if elapsed >= seconds:
                    break
                continue
            clips += got
            if elapsed >= seconds and not whole:
                break
    finally:
        it.close()  # type: ignore[attr-defined]
    cpu = time.process_time() - cpu0
    return {"clips": clips, "seconds": elapsed, "passes": passes,
            "clips_per_s": clips / elapsed if elapsed else 0.0,
            "cpu_us_per_clip": round(1e6 * cpu / clips, 1) if clips else 0.0,
            "resident_before": None if resident is None else round(resident, 4),
            "rss_added_kb": max(0, peak_kb() - rss0) if reset else None}


def raw_read_once(paths: Sequence[str]) -> Iterator[float]:
    """One pass of ``cat`` over ``paths`` (warms the page cache)."""
    it = raw_read(paths)
    total = sum(os.path.getsize(p) for p in paths) / CLIP_BYTES
    done = 0.0
    while done < total:
        done += next(it)
        yield done


def methods(segments: Path, recordings: Path, presplit: list[str], batch: int) -> list[dict[str, Any]]:
    """The methods: name, label, what it reads (files), one pass over it (clips), and whether it also runs
    warm (the read-ahead A/B)."""
    seg_shards = sorted(str(p) for p in segments.glob("*.tar"))
    rec_shards = sorted(str(p) for p in recordings.glob("*.tar"))
    seg_clips = sum(os.path.getsize(p) for p in seg_shards) / CLIP_BYTES
    endless = float("inf")  # cat and shardkit drop the cache again each pass: time-bound runs
    rows = [("cat", "readinto() an 8 MiB buffer over the segment shards, front to back (the 1.00 reference)",
             functools.partial(cat_cold, seg_shards), seg_shards, endless, False)]
    for mode, what in READAHEAD_LABELS.items():
        rows.append((f"shardkit-segments-{mode}", f"ShardDataset, segments, shuffled; {what}",
                     functools.partial(shardkit_cold, segments, readahead=mode, batch=batch), seg_shards, endless,
                     True))
    for mode, what in READAHEAD_LABELS.items():
        rows.append((f"shardkit-recordings-{mode}", f"ShardDataset, recordings + random 5 s crops, shuffled; {what}",
                     functools.partial(shardkit_cold, recordings, readahead=mode, batch=batch), rec_shards,
                     endless, True))
    rows.append(("presplit-wav", "one 16-bit WAV file per 5 s clip, random order, soundfile (the seed's path)",
                 functools.partial(presplit_stream, presplit, batch), presplit, len(presplit), False))
    rows.append(("webdataset", "WebDataset over the segment shards (shuffle(1000), soundfile .wav decode)",
                 functools.partial(webdataset_stream, seg_shards, 0, batch=batch), seg_shards, seg_clips, False))
    return [{"method": n, "label": label, "make": make, "files": files, "pass_clips": clips, "warm": warm,
             "make_cold": functools.partial(make, redrop=files) if make.func is shardkit_cold else make}
            for n, label, make, files, clips, warm in rows]


def _ref_of(m: dict[str, Any], by: dict[str, dict[str, Any]], cold: bool) -> dict[str, Any]:
    """What ``m`` is compared with, run right before it: ``cat`` (cold), the same set read-ahead off (warm)."""
    return by["cat"] if cold else by[m["method"].rsplit("-", 1)[0] + "-off"]


def _round(table: list[dict[str, Any]], runs: dict[str, list[dict[str, Any]]], seconds: float,
           log: Callable[[str], None]) -> None:
    """Every method once cold, each right after a run of its reference (``cat``), then the warm A/B (each
    right after the same set with read-ahead off): a ratio compares two runs seconds apart, which on a
    shared machine and disk is what keeps it meaningful."""
    by = {m["method"]: m for m in table}
    for cold in (True, False):
        for m in table:
            if not (cold or m["warm"]) or (cold and m["method"] == "cat"):
                continue
            ref = _ref_of(m, by, cold)
            pair = [ref, m] if ref is not m else [m]
            got = [timed_run(x["make_cold" if cold else "make"], x["files"], cold=cold, seconds=seconds,
                             max_clips=MAX_PASS * x["pass_clips"] if cold else float("inf"),
                             whole=cold and x["pass_clips"] == float("inf")) for x in pair]
            r = got[-1]
            r["ref_clips_per_s"], r["ref_cpu_us"] = got[0]["clips_per_s"], got[0]["cpu_us_per_clip"]
            runs.setdefault(m["method"] + ("" if cold else ":warm"), []).append(r)
            if cold and ref is not m:
                runs.setdefault("cat", []).append({**got[0], "ref_clips_per_s": got[0]["clips_per_s"],
                                                   "ref_cpu_us": got[0]["cpu_us_per_clip"]})
            log(f"  {m['method'] + ('' if cold else ':warm'):<34} {r['clips_per_s']:>9.1f} clips/s "
                f"({r['clips_per_s'] / (r['ref_clips_per_s'] or 1e-9):.2f}× {ref['method']} just before; "
                f"{r['cpu_us_per_clip']:.0f} CPU µs/clip; resident before {r['resident_before']}, "
                f"+RSS {r['rss_added_kb']} kB)")


def _rng(vals: list[float], nd: int = 3) -> list[float]:
    return [round(min(vals), nd), round(max(vals), nd)]


def _summary(runs: dict[str, list[dict[str, Any]]], labels: dict[str, str]) -> list[dict[str, Any]]:
    """Per method: clips/s of every round, its range and median; its ratio to the reference run just before
    it (``cat`` cold; the ``off`` reader warm) as a range, in clips/s and (warm) in CPU per clip."""
    out = []
    for key, rs in runs.items():
        rates = [r["clips_per_s"] for r in rs]
        warm = key.endswith(":warm")
        ratios = [r["clips_per_s"] / (r["ref_clips_per_s"] or 1e-9) for r in rs]
        cpu = [r["cpu_us_per_clip"] / (r["ref_cpu_us"] or 1e-9) for r in rs]
        rss = [r["rss_added_kb"] for r in rs if r["rss_added_kb"] is not None]
        out.append({"method": key, "label": labels[key.removesuffix(":warm")], "warm": warm,
                    "runs": [round(x, 1) for x in rates], "range": _rng(rates, 1),
                    "clips_per_s": round(float(np.median(rates)), 1),
                    "vs": key.removesuffix(":warm").rsplit("-", 1)[0] + "-off:warm" if warm else "cat",
                    "vs_range": _rng(ratios), "vs_cat": round(float(np.median(ratios)), 3),
                    "cpu_us_per_clip": _rng([r["cpu_us_per_clip"] for r in rs], 1),
                    "cpu_vs_range": _rng(cpu),
                    "resident_before": max((r["resident_before"] or 0) for r in rs),
                    "rss_added_kb": max(rss) if rss else None})
    return out


def measure_cold(segments: Path, recordings: Path, work: Path, *, seconds: float, repeats: int,
                 batch: int = BATCH, log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Every method, round-robin, ``repeats`` rounds; ranges, ratios to ``cat`` and the targets."""
    presplit = write_presplit(segments, work / "presplit-wav")
    table = methods(segments, recordings, presplit, batch)
    runs: dict[str, list[dict[str, Any]]] = {}
    for rnd in range(repeats):
        log(f"  cold round {rnd + 1} of {repeats}")
        _round(table, runs, seconds, log)
    results = _summary(runs, {m["method"]: m["label"] for m in table})
    by = {r["method"]: r for r in results}
    targets = []
    for name in ("shardkit-segments-default", "shardkit-recordings-default"):
        lo = by[name]["vs_range"][0]
        targets.append({"target": f"{name} ≥ {COLD_TARGET}× cold cat (every round)",
                        "shown": "{:.2f}–{:.2f}×".format(*by[name]["vs_range"]), "met": lo >= COLD_TARGET})
        warm = by.get(name + ":warm")
        if warm:
            targets.append({"target": f"{name} warm: CPU per clip ≤ 1.03× read-ahead off's (every round; on a shared "
                                      "machine CPU time per clip is the stable measure, clips/s is shown too)",
                            "shown": "{:.2f}–{:.2f}× CPU/clip, {:.2f}–{:.2f}× clips/s".format(
                                *warm["cpu_vs_range"], *warm["vs_range"]),
                            "met": warm["cpu_vs_range"][1] <= 1.03})
    return {"results": results, "seconds": seconds, "repeats": repeats, "max_pass": MAX_PASS,
            "targets": targets, "target": targets[0]}  # the headline: shuffled segments, as its text says


def markdown(cold: dict[str, Any]) -> str:
    """The cold table for the report: ranges over the rounds."""
    rows = ["| path (1 process) | clips/s (range) | × the reference run just before (range) | CPU µs/clip "
            "(range) | +RSS MB |", "|---|---|---|---|---|"]
    for r in cold["results"]:
        rss = "–" if r["rss_added_kb"] is None else f"{r['rss_added_kb'] / 1024:.0f}"
        ref = "`cat` cold" if r["vs"] == "cat" else "read-ahead off, warm"
        vs = "{:.2f}–{:.2f}".format(*r["vs_range"])
        if r["warm"]:
            vs += " (CPU/clip {:.2f}–{:.2f}×)".format(*r["cpu_vs_range"])
        where = "warm" if r["warm"] else "cold"
        rows.append(f"| {r['method'].removesuffix(':warm')} ({where}): {r['label']} | "
                    f"{r['range'][0]:,.0f}–{r['range'][1]:,.0f} | {vs} × {ref} | "
                    f"{r['cpu_us_per_clip'][0]:,.0f}–{r['cpu_us_per_clip'][1]:,.0f} | {rss} |")
    lines = [f"- {t['target']}: {t['shown']} — {'met' if t['met'] else 'missed'}"
             for t in cold.get("targets", [cold["target"]])]
    head = ""
    if "throttle" in cold:
        th = cold["throttle"]
        head = (f"Disk {th.get('device')} throttled to {th['bps'] / 2**20:.0f} MiB/s, {th['iops']} IOPS (blkio).\n\n"
                if th["throttled"] else f"{th.get('note')}\n\n")
    return head + "\n".join(rows) + "\n\nTargets:\n" + "\n".join(lines) + "\n"


def prepare_sets(out: Path, workers: int, modes: Sequence[str] = ("segments", "recordings"),
                 log: Callable[[str], None] = _log) -> list[Path]:
    """The benchmarks' corpus packed in each of ``modes`` (wav16, one shard each), reused while unchanged."""
    from benchmarks import corpus as corpus_mod
    from benchmarks import packbench

    corpus = corpus_mod.build(out / "corpus", corpus_mod.FULL, workers=workers, log=log)
    sets = []
    for mode in modes:
        dest = out / f"cold-{mode}"
        marker = out / f"cold-{mode}.json"
        want = {"src": str(corpus.src), "files": len(corpus.files), "shard_size": SHARD_SIZE}
        if not (marker.exists() and json.loads(marker.read_text()) == want and (dest / "manifest.json").exists()):
            log(f"cold: packing {mode} into {dest} ...")
            packbench.run_pack(corpus.src, dest, mode, workers, SHARD_SIZE)
            marker.write_text(json.dumps(want))
        sets.append(dest)
    return sets


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cold", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segments", type=Path, help="a segments set (default: packed under OUT)")
    ap.add_argument("--recordings", type=Path, help="a recordings set (default: packed under OUT)")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--seconds", type=float, default=6.0, help="timed seconds per run (default 6)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--no-throttle", action="store_true", help="read the disk as it is")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    missing = [m for m in ("segments", "recordings") if getattr(args, m) is None]
    for mode, path in zip(missing, prepare_sets(args.out, max(1, len(os.sched_getaffinity(0))), missing),
                          strict=True):
        setattr(args, mode, path)
    with contextlib.ExitStack() as stack:
        th = ({"throttled": False, "note": "not throttled (--no-throttle)", "bps": 0, "iops": 0}
              if args.no_throttle else stack.enter_context(throttled(args.segments)))
        cold = measure_cold(args.segments, args.recordings, args.out, seconds=args.seconds, repeats=args.repeats,
                            batch=args.batch)
    cold["throttle"] = th
    cold["command"] = "python -m benchmarks.cold " + " ".join(sys.argv[1:] if argv is None else argv)
    (args.out / "cold.json").write_text(json.dumps(cold, indent=1) + "\n")
    _log(markdown(cold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
