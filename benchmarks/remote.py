"""Object storage: clips/s of 5 s int16 clips read from an S3 server on loopback, against the local disk.

    python -m benchmarks.remote [--segments DIR --recordings DIR] [--quick] [--out DIR] [--seconds S] [--repeats N]

(``python -m benchmarks.run`` runs it on the sets it packed; ``--no-remote`` skips it.) Without
``--segments``/``--recordings`` the sets of ``OUT/shards-segments`` and ``OUT/shards-recordings`` are used
(``python -m benchmarks.run`` leaves them there).

1. moto's S3 server (``ThreadedMotoServer``) runs in a process of its own, and a proxy that holds back the
   first byte of every answer by ``--delay`` (default 50 ms) in another (:mod:`benchmarks.loopback`), so
   that neither takes CPU from the measuring process's interpreter. Both sets are uploaded with boto3.
2. Each set is read with ``ShardDataset`` (5 s crops, shuffled, **default settings**: the object store is
   hinted a shuffle window ahead, 512 MB window cache per process) from the local folder (warm page
   cache), from ``s3://`` directly ("0 ms") and through the proxy ("50 ms"); in 1 process and through a
   ``DataLoader`` with 2 workers. Methods run round-robin, best of ``repeats``. The measuring process never
   starts obstore itself (its forked DataLoader workers could not use it): 1-process runs read in a
   forked child of it.
3. The server's own ceiling: ranged GETs of 16 MB over the segment shards with obstore, 1, 4 and 8 at a
   time, straight to moto and through the proxy, with no shardkit code in the loop.

moto, boto3 and obstore come with the ``test`` and ``remote`` extras; without them the rows are reported
as skipped, with the reason. Nothing here asserts a speed; the target is reported as met or missed.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, _log, _md_table, _procs
from benchmarks.harness import load1, measure_all, run_forked
from benchmarks.methods import BATCH, CLIP_BYTES, Method, shardkit_stream

#: injected first-byte latency of the slow endpoint, seconds
DELAY = 0.05
#: untimed seconds of every run after its first batch: while the first batch waits for its window, the
#: read-ahead fetches up to two shuffle windows (512 MB), which a short timed run would then count as speed
WARMUP = 3.0
#: timed seconds per run (full runs): long enough to cross an epoch of the benchmark's segments set at the
#: rates seen here, where the read-ahead starts cold again
SECONDS = 6.0
#: target of issue 10: clips/s from S3 with 50 ms first-byte latency ≥ this × the local disk's
TARGET = 0.8
#: the bucket the sets are uploaded to
BUCKET = "shardkit-bench"
#: the raw GET probe: bytes per GET and the GETs in flight it tries
RAW_WINDOW = 16 << 20
RAW_CONCURRENCY = (1, 4, 8)
MB = 1e6


# ------------------------------------------------------------------------------------------ servers


@dataclass
class Servers:
    """The S3 server and the latency proxy in front of it, each a child process serving until its stdin closes."""

    endpoint: str            #: moto, straight
    slow: str                #: the proxy with ``delay`` seconds before every answer's first byte
    delay: float
    procs: list[subprocess.Popen]

    def options(self, endpoint: str) -> dict[str, str]:
        """``storage_options`` for a reader of ``endpoint`` (credentials of the loopback server)."""
        return {"endpoint": endpoint, "access_key_id": "testing", "secret_access_key": "testing",
                "region": "us-east-1"}

    def stop(self) -> None:
        for p in self.procs:
            if p.stdin:
                p.stdin.close()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def missing() -> str | None:
    """Why the object-storage rows cannot run here, or None."""
    need = [("moto", "moto[s3] flask flask-cors (the test extra)"), ("boto3", "boto3 (the test extra)"),
            ("obstore", "obstore (pip install 'shardkit[remote]')")]
    gone = [pip for mod, pip in need if importlib.util.find_spec(mod) is None]
    return f"not installed: {', '.join(gone)}" if gone else None


def _serve(*args: str) -> tuple[subprocess.Popen, str]:
    """A ``benchmarks.loopback`` server process and its URL. Its stderr (a line per request) goes to a
    temporary file: a pipe nobody reads would fill up and block the server."""
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.loopback", *args], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline().strip() if proc.stdout else ""
    if not line.startswith("http://"):
        proc.kill()
        log.seek(0)
        err = log.read().decode(errors="replace")
        raise RuntimeError(f"benchmarks.loopback {args[0]} did not start: {err.strip()[-500:]}")
    log.close()  # the process keeps its own descriptor
    return proc, line


def start_servers(delay: float = DELAY) -> Servers:
    moto, endpoint = _serve("moto")
    try:
        prox, slow = _serve("proxy", endpoint, "--delay", str(delay))
    except Exception:
        moto.kill()
        raise
    return Servers(endpoint, slow, delay, [prox, moto])


# ------------------------------------------------------------------------------------------ methods


def sources(servers: Servers, sets: dict[str, Path]) -> list[tuple[str, str, str, Any, str]]:
    """``(mode, where, location, storage_options, label)`` of every set and place it is read from."""
    ms = round(servers.delay * 1000)
    out = []
    for mode, path in sets.items():
        url = f"s3://{BUCKET}/{mode}/"
        out += [(mode, "local", str(path), None, f"local folder, warm page cache ({mode})"),
                (mode, "s3-0ms", url, servers.options(servers.endpoint), f"moto S3 on loopback, straight ({mode})"),
                (mode, f"s3-{ms}ms", url, servers.options(servers.slow),
                 f"moto S3 behind a proxy adding {ms} ms before each answer's first byte ({mode})")]
    return out


def build_methods(servers: Servers, sets: dict[str, Path], *, workers: int, batch: int,
                  crops: dict[str, int]) -> list[Method]:
    """One :class:`Method` per (set, place, process count); 1-process runs read in a forked child."""
    methods = []
    for w in (0, workers):
        for mode, where, location, options, label in sources(servers, sets):
            partial = "drop" if mode == "recordings" else None
            make = functools.partial(_stream, location, w, options, batch=batch, partial=partial,
                                     crops_per_recording=crops.get(mode, 1))
            files = sorted(str(p) for p in Path(sets[mode]).glob("*.tar")) if where == "local" else ()
            methods.append(Method(f"{mode}-{where}", label, w, "shardkit", make=make, files=files, fork=w == 0))
    return methods


def _stream(location: str, workers: int, options: dict[str, str] | None, **kw: Any) -> Iterator[float]:
    return shardkit_stream(location, workers, storage_options=options, **kw)


# ------------------------------------------------------------------------------------------ raw ceiling


def raw_gets(endpoint: str, url: str, names: list[tuple[str, int]], *, concurrency: int, seconds: float,
             window: int = RAW_WINDOW) -> dict[str, float]:
    """Ranged GETs of ``window`` bytes over the objects ``names`` ((name, size)), front to back, ``concurrency``
    at a time, for ``seconds``, with obstore and nothing else: MB/s and GETs/s (run it in a forked child)."""
    import obstore

    from shardkit.read.locate import make_store

    store = make_store(url, Servers(endpoint, endpoint, 0, []).options(endpoint))
    ranges = [(n, s, min(s + window, size)) for n, size in names for s in range(0, size, window)]
    lock = threading.Lock()
    state = {"next": 0, "bytes": 0, "gets": 0}
    t0 = time.perf_counter()
    stop = t0 + seconds

    def loop() -> None:
        while time.perf_counter() < stop:
            with lock:
                n, a, b = ranges[state["next"] % len(ranges)]
                state["next"] += 1
            data = obstore.get_range(store, n, start=a, end=b)
            if len(data) != b - a:
                raise OSError(f"short GET: {len(data)} of {b - a} bytes")
            with lock:
                state["bytes"] += b - a
                state["gets"] += 1

    threads = [threading.Thread(target=loop) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {"mb_per_s": state["bytes"] / MB / elapsed, "gets_per_s": state["gets"] / elapsed,
            "seconds": elapsed, "bytes": state["bytes"]}


def _raw_stream(endpoint: str, url: str, names: list[tuple[str, int]], concurrency: int, seconds: float
                ) -> Iterator[float]:
    """:func:`raw_gets` as a one-step clip iterator for :func:`run_forked` (yields the result as clips)."""
    yield 0.0
    r = raw_gets(endpoint, url, names, concurrency=concurrency, seconds=seconds)
    yield r["bytes"] / CLIP_BYTES


def measure_raw(servers: Servers, segments: Path, *, seconds: float, log: Callable[[str], None] = _log
                ) -> list[dict[str, Any]]:
    """The raw GET ceiling straight and through the proxy, at each of :data:`RAW_CONCURRENCY`."""
    names = [(p.name, p.stat().st_size) for p in sorted(Path(segments).glob("*.tar"))]
    url = f"s3://{BUCKET}/segments/"
    out = []
    for where, endpoint in (("s3-0ms", servers.endpoint), (f"s3-{round(servers.delay * 1000)}ms", servers.slow)):
        for c in RAW_CONCURRENCY:
            run = run_forked(functools.partial(_raw_stream, endpoint, url, names, c, seconds), 1e-9, 1e18)
            mb = run["clips"] * CLIP_BYTES / MB / max(run["seconds"], 1e-9)
            out.append({"where": where, "concurrency": c, "window_bytes": RAW_WINDOW, "mb_per_s": round(mb, 1),
                        "clips_per_s": round(mb * MB / CLIP_BYTES, 1), "seconds": round(run["seconds"], 2)})
            log(f"  raw GET {where:<8} {c} in flight: {mb:8.1f} MB/s = {mb * MB / CLIP_BYTES:8.0f} clips/s "
                f"of 16 MB GETs (load {load1()})")
    return out


# ------------------------------------------------------------------------------------------ run


def measure_remote(sets: dict[str, Path], *, seconds: float, repeats: int, workers: int = 2, batch: int = BATCH,
                   crops: dict[str, int] | None = None, delay: float = DELAY, max_clips: float = 1e9,
                   raw_seconds: float = 2.0, warmup: float = WARMUP, log: Callable[[str], None] = _log
                   ) -> dict[str, Any]:
    """Every (set, place, process count) round-robin, the raw GET ceiling, ratios and the targets. Each run reads
    ``warmup`` seconds untimed after its first batch (the read-ahead's head start), then ``seconds`` timed."""
    ms = round(delay * 1000)
    doc: dict[str, Any] = {"delay_s": delay, "seconds": seconds, "warmup_s": warmup, "repeats": repeats,
                           "workers": workers, "load": {"start": load1()}}
    why = missing()
    if why is not None:
        doc.update(skipped=why, results=[], raw=[], targets=_targets(doc, ms))
        log(f"  object storage: skipped ({why})")
        return doc
    servers = start_servers(delay)
    try:
        t0 = time.perf_counter()
        from benchmarks.loopback import upload

        sizes = {mode: upload(servers.endpoint, path, BUCKET, f"{mode}/") for mode, path in sets.items()}
        doc["upload"] = {"bytes": sizes, "seconds": round(time.perf_counter() - t0, 1)}
        log(f"  uploaded {sum(sizes.values()) / MB:.0f} MB to moto in {doc['upload']['seconds']} s (boto3)")
        methods = build_methods(servers, sets, workers=workers, batch=batch, crops=crops or {})
        from benchmarks import packbench

        results = measure_all(methods, seconds=seconds, max_clips=max_clips, repeats=repeats, warmup=warmup,
                              before=lambda m: packbench.warm(list(m.files)), log=log)
        doc["results"] = [r.to_dict() for r in results]
        doc["raw"] = measure_raw(servers, sets["segments"], seconds=raw_seconds, log=log)
    finally:
        servers.stop()
    doc["load"]["end"] = load1()
    doc["ratios"] = _ratios(doc["results"], ms)
    doc["targets"] = _targets(doc, ms)
    return doc


def _find(results: list[dict], method: str, workers: int) -> dict | None:
    return next((r for r in results if r["method"] == method and r["workers"] == workers and r["status"] == "ok"),
                None)


def _ratios(results: list[dict], ms: int) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for mode in ("segments", "recordings"):
        for w in sorted({r["workers"] for r in results}):
            local = _find(results, f"{mode}-local", w)
            for where in ("s3-0ms", f"s3-{ms}ms"):
                r = _find(results, f"{mode}-{where}", w)
                key = f"{mode}/{where}/local_{'1proc' if w == 0 else f'{w}workers'}"
                out[key] = round(r["clips_per_s"] / local["clips_per_s"], 4) if r and local and local[
                    "clips_per_s"] else None
    return out


def _targets(doc: dict[str, Any], ms: int) -> list[dict[str, Any]]:
    rows = []
    for w in (0, doc["workers"]):
        tag = "1proc" if w == 0 else f"{w}workers"
        value = doc.get("ratios", {}).get(f"segments/s3-{ms}ms/local_{tag}")
        met = None if value is None else value >= TARGET
        local = _find(doc.get("results", []), "segments-local", w)
        s3 = _find(doc.get("results", []), f"segments-s3-{ms}ms", w)
        detail = (f"{s3['clips_per_s']:,.0f} vs {local['clips_per_s']:,.0f} clips/s" if s3 and local
                  else doc.get("skipped", "not measured"))
        rows.append({"target": f"S3 with {ms} ms first-byte latency ≥ {TARGET}× the local disk (segments, "
                               f"{_procs(w)}, default settings)", "value": value, "goal": TARGET, "met": met,
                     "shown": "n/a" if value is None else f"{value:.2f}×", "detail": detail})
    return rows


def ceiling(remote: dict[str, Any], where: str) -> dict[str, Any] | None:
    """The fastest raw GET run of endpoint ``where`` (``s3-0ms``, ``s3-50ms``), or None."""
    return max((x for x in remote.get("raw", []) if x["where"] == where), key=lambda x: x["mb_per_s"], default=None)


def bound(remote: dict[str, Any], target: str) -> str | None:
    """What this run measured that bears on a missed object-storage ``target`` (figures only)."""
    if remote.get("skipped"):
        return None
    ms = round(remote["delay_s"] * 1000)
    w = 0 if "1 proc" in target else remote["workers"]
    res = remote["results"]
    local, s3 = _find(res, "segments-local", w), _find(res, f"segments-s3-{ms}ms", w)
    straight = _find(res, "segments-s3-0ms", w)
    top, top0 = ceiling(remote, f"s3-{ms}ms"), ceiling(remote, "s3-0ms")
    if not (local and s3 and straight and top and top0):
        return None
    return (f"{s3['clips_per_s']:,.0f} clips/s ({s3['mb_per_s']:,.0f} MB/s) against {local['clips_per_s']:,.0f} from "
            f"the local disk; {straight['clips_per_s']:,.0f} clips/s with no added latency. The server alone (16 MB "
            f"ranged GETs, no shardkit code) gave at most {top['mb_per_s']:,.0f} MB/s = {top['clips_per_s']:,.0f} "
            f"clips/s through the {ms} ms proxy ({top['concurrency']} in flight) and {top0['mb_per_s']:,.0f} MB/s "
            f"straight: {top['clips_per_s'] / local['clips_per_s']:.2f}× the local figure, so no client reaches the "
            f"target against this server; shardkit reached {s3['mb_per_s'] / top['mb_per_s']:.2f}× that ceiling.")


# ------------------------------------------------------------------------------------------ report


def markdown(remote: dict[str, Any]) -> str:
    """The object-storage section of the report (tables, the raw ceiling, the targets)."""
    if remote.get("skipped"):
        return f"Not measured here: {remote['skipped']}.\n"
    res = remote["results"]
    ms = round(remote["delay_s"] * 1000)
    rows = []
    for r in res:
        local = _find(res, r["method"].split("-")[0] + "-local", r["workers"])
        if r["status"] != "ok":
            rows.append([r["method"], _procs(r["workers"]), r["status"], "", "", "", "", r["reason"][:120]])
            continue
        top = ceiling(remote, r["method"].split("-", 1)[1])
        rows.append([r["method"], _procs(r["workers"]), f"{r['clips_per_s']:,.0f}", f"{r['mb_per_s']:,.0f}",
                     f"{r['clips_per_s'] / local['clips_per_s']:.3f}" if local and local["clips_per_s"] else "–",
                     f"{r['mb_per_s'] / top['mb_per_s']:.2f}" if top and top["mb_per_s"] else "–",
                     ", ".join(f"{x:,.0f}" for x in r["runs"]), r["label"]])
    raw = [[x["where"], str(x["concurrency"]), f"{x['mb_per_s']:,.0f}", f"{x['clips_per_s']:,.0f}"]
           for x in remote.get("raw", [])]
    up = remote.get("upload", {})
    lines = [
        f"moto's S3 server on loopback (its own process), straight (`s3-0ms`) and behind a proxy that holds back "
        f"every answer's first byte by {ms} ms (`s3-{ms}ms`, a process of its own too); "
        f"{sum(up.get('bytes', {}).values()) / MB:,.0f} MB uploaded with boto3 in {up.get('seconds', 0)} s. "
        f"`ShardDataset` with default settings (5 s crops, shuffled, batch {BATCH}); 1 proc reads in a forked "
        f"child of the measuring process, `DL×K` through a DataLoader. Each run reads {remote.get('warmup_s', 0):g} s "
        f"untimed after its first batch (the read-ahead's head start), then ≤ {remote['seconds']:g} s timed; best of "
        f"{remote['repeats']} round-robin runs; load average {remote['load']['start']} → {remote['load'].get('end')}.",
        "",
        _md_table(["method", "procs", "clips/s", "MB/s", "× local", "× raw GET ceiling", "runs", "what"], rows),
        "",
        "The server's own ceiling, no shardkit in the loop: obstore ranged GETs of 16 MB over the segment shards, "
        "front to back, k in flight.",
        "",
        _md_table(["endpoint", "GETs in flight", "MB/s", "clips/s equivalent"], raw),
        "",
        "`× raw GET ceiling`: the row's MB/s over the fastest raw GET run against the same endpoint (DataLoader "
        "workers each fetch whole windows, so they move more bytes than they deliver).",
        "",
    ]
    lines += [f"Target: {t['target']}: {t['shown']} — {'met' if t['met'] else 'n/a' if t['met'] is None else 'missed'}"
              f" ({t['detail']})." for t in remote["targets"]]
    return "\n".join(lines) + "\n"


def _default_sets(out: Path) -> dict[str, Path]:
    return {"segments": out / "shards-segments", "recordings": out / "shards-recordings"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.remote", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segments", type=Path, help="segments-mode set (default OUT/shards-segments)")
    ap.add_argument("--recordings", type=Path, help="recordings-mode set (default OUT/shards-recordings); read "
                    "only with --modes segments,recordings")
    ap.add_argument("--modes", default="segments", help="sets to read, comma-separated (default segments; "
                    "recordings: random crops, each fetches its whole member)")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--quick", action="store_true", help="short runs (smoke)")
    ap.add_argument("--seconds", type=float, help=f"timed seconds per run (default {SECONDS:g}; quick 0.3)")
    ap.add_argument("--repeats", type=int, help="round-robin rounds, the best is reported (default 3; quick 1)")
    ap.add_argument("--delay", type=float, default=DELAY, help="first-byte latency of the slow endpoint, seconds")
    ap.add_argument("--warmup", type=float, default=WARMUP, help=f"untimed seconds after the first batch of every "
                    f"run (default {WARMUP:g}; quick 0)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=BATCH)
    args = ap.parse_args(argv)
    given = {"segments": args.segments, "recordings": args.recordings}
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if "segments" not in modes or not set(modes) <= set(given):
        ap.error("--modes: segments, or segments,recordings")
    sets = {m: given[m] or _default_sets(args.out)[m] for m in modes}
    for mode, path in sets.items():
        if not path.is_dir():
            ap.error(f"{path}: no shard set ({mode}); run python -m benchmarks.run first or pass --{mode}")
    seconds = args.seconds if args.seconds is not None else (0.3 if args.quick else SECONDS)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    crops = {}
    if "recordings" in sets:
        from benchmarks.run import rec_crops
        from shardkit.read import ShardSet

        with ShardSet.open(sets["recordings"]) as ss:
            crops["recordings"] = rec_crops(len(ss), args.batch)
    remote = measure_remote(sets, seconds=seconds, repeats=repeats, workers=args.workers, batch=args.batch,
                            crops=crops, delay=args.delay, max_clips=2_000 if args.quick else 1e9,
                            raw_seconds=0.3 if args.quick else 2.0, warmup=0.0 if args.quick else args.warmup)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "remote.json").write_text(json.dumps(remote, indent=1, default=str) + "\n")
    _log(markdown(remote))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
