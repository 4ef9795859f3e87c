"""Object storage: clips/s of 5 s int16 clips read from object servers on loopback, against the local disk.

    python -m benchmarks.remote [--segments DIR --recordings DIR] [--servers http,moto] [--delays 0,0.01,0.05]
                                [--quick] [--out DIR] [--seconds S] [--repeats N]

(``python -m benchmarks.run`` runs it on the sets it packed; ``--no-remote`` skips it.) Without
``--segments``/``--recordings`` the sets of ``OUT/shards-segments`` and ``OUT/shards-recordings`` are used
(``python -m benchmarks.run`` leaves them there).

1. Servers, each in a process of its own so that none takes CPU from the measuring process's interpreter
   (:mod:`benchmarks.loopback`):

   - ``http`` (default): a threaded HTTP file server with Range, ETag and If-Match support that sends a
     ranged GET's bytes with ``os.sendfile`` — a GET costs its range, as on a real object store — holding
     back every answer's first byte by each of ``--delays`` (default 0, 10 and 50 ms; one server per
     delay, read as ``http://127.0.0.1:PORT/segments/`` with obstore's HTTP store). The delay is the
     server's own, not a proxy's: a Python proxy copying every body costs ~25 % of the raw 16 MB GET rate
     at 8 in flight here, which a real store does not charge;
   - ``moto``: moto's S3 server, straight and behind the latency proxy (``--delays``' largest), sets
     uploaded with boto3. moto reads the whole object for every ranged GET, so it measures moto, not the
     client (docs/benchmarks.md); not run by default.
2. Each set is read with ``ShardDataset`` (5 s crops, shuffled, **default settings**: the object store is
   hinted a shuffle window ahead, 512 MB window cache per process) from the local folder (warm page
   cache: the baseline of issue 10) and from every endpoint; in 1 process and through a ``DataLoader``
   with 2 workers (which share a private shard cache on disk: a run of several epochs reads the later
   ones from there; ``benchmarks.remote_workers`` gives each epoch apart, with the bytes fetched).
   Methods run round-robin, best of ``repeats``. The measuring process never starts obstore itself (its
   forked DataLoader workers could not use it): 1-process runs read in a forked child.
3. Each server's own ceiling: ranged GETs of 16 MB over the segment shards with obstore, 1, 4 and 16 at
   a time, with no shardkit code in the loop.

moto, boto3 and obstore come with the ``test`` and ``remote`` extras; without them the rows are reported
as skipped, with the reason. Nothing here asserts a speed; the target is reported as met or missed.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, _log, _md_table, _procs
from benchmarks.harness import load1, measure_all, run_forked
from benchmarks.loopback import raw_gets
from benchmarks.methods import BATCH, CLIP_BYTES, Method, shardkit_stream

#: injected first-byte latency the target is measured at, seconds
DELAY = 0.05
#: first-byte latencies of the default run's endpoints, seconds
DELAYS = (0.0, 0.01, 0.05)
#: servers of the default run (``moto`` is available with ``--servers http,moto``)
SERVERS = ("http",)
#: untimed seconds of every run after its first batch: while the first batch waits for its window, the
#: read-ahead fetches up to two shuffle windows (512 MB), which a short timed run would then count as speed
WARMUP = 3.0
#: timed seconds per run (full runs): long enough to cross an epoch of the benchmark's segments set at the
#: rates seen here, where the read-ahead starts cold again
SECONDS = 6.0
#: target of issue 10: clips/s from object storage with 50 ms first-byte latency ≥ this × the local disk's
TARGET = 0.8
#: the bucket the sets are uploaded to (moto)
BUCKET = "shardkit-bench"
#: the raw GET probe: bytes per GET and the GETs in flight it tries
RAW_WINDOW = 16 << 20
RAW_CONCURRENCY = (1, 4, 16)
MB = 1e6
S3_OPTIONS = {"access_key_id": "testing", "secret_access_key": "testing", "region": "us-east-1"}


# ------------------------------------------------------------------------------------------ servers


@dataclass
class Endpoint:
    """One place the sets are read from: ``where`` (``http-50ms``, ``s3-0ms``), the server's URL, its delay."""

    where: str
    kind: str                #: "http" | "s3"
    url: str                 #: http://127.0.0.1:PORT
    delay: float
    label: str

    def location(self, mode: str) -> str:
        """The URL of set ``mode`` at this endpoint."""
        return f"{self.url}/{mode}/" if self.kind == "http" else f"s3://{BUCKET}/{mode}/"

    def options(self) -> dict[str, str] | None:
        """``storage_options`` of a reader (the loopback S3 server's endpoint and credentials)."""
        return None if self.kind == "http" else {"endpoint": self.url, **S3_OPTIONS}


@dataclass
class Servers:
    """The servers of a run, each a child process serving until its stdin closes."""

    endpoints: list[Endpoint]
    procs: list[subprocess.Popen] = field(default_factory=list)
    tmp: str | None = None   #: the folder of links the HTTP servers serve
    s3: str | None = None    #: moto's own URL (uploads), when moto runs

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
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def missing(servers: Sequence[str] = SERVERS) -> str | None:
    """Why the object-storage rows cannot run here, or None."""
    need = [("obstore", "obstore (pip install 'shardkit[remote]')")]
    if "moto" in servers:
        need += [("moto", "moto[s3] flask flask-cors (the test extra)"), ("boto3", "boto3 (the test extra)")]
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


def _ms(delay: float) -> int:
    return round(delay * 1000)


def start_servers(sets: dict[str, Path], servers: Sequence[str] = SERVERS, delays: Sequence[float] = DELAYS
                  ) -> Servers:
    """Start the servers (``http``: one per delay; ``moto``: moto and the proxy with the largest delay)."""
    out = Servers([])
    try:
        if "http" in servers:
            out.tmp = tempfile.mkdtemp(prefix="shardkit-bench-http-")
            for mode, path in sets.items():
                os.symlink(Path(path).resolve(), Path(out.tmp) / mode)
            for d in delays:
                proc, url = _serve("files", out.tmp, "--delay", str(d))
                out.procs.append(proc)
                out.endpoints.append(Endpoint(f"http-{_ms(d)}ms", "http", url, d, f"HTTP range server on loopback "
                                              f"(sendfile), {_ms(d)} ms before each answer's first byte"))
        if "moto" in servers:
            proc, out.s3 = _serve("moto")
            out.procs.append(proc)
            out.endpoints.append(Endpoint("s3-0ms", "s3", out.s3, 0.0, "moto S3 on loopback, straight"))
            d = max(delays)
            proc, slow = _serve("proxy", out.s3, "--delay", str(d))
            out.procs.append(proc)
            out.endpoints.append(Endpoint(f"s3-{_ms(d)}ms", "s3", slow, d, f"moto S3 behind a proxy adding {_ms(d)} "
                                          "ms before each answer's first byte"))
    except Exception:
        out.stop()
        raise
    return out


# ------------------------------------------------------------------------------------------ methods


def build_methods(servers: Servers, sets: dict[str, Path], *, workers: int, batch: int,
                  crops: dict[str, int]) -> list[Method]:
    """One :class:`Method` per (set, place, process count); 1-process runs read in a forked child."""
    methods = []
    for w in (0, workers):
        for mode, path in sets.items():
            places = [("local", str(path), None, "local folder, warm page cache")]
            places += [(e.where, e.location(mode), e.options(), e.label) for e in servers.endpoints]
            for where, location, options, label in places:
                partial = "drop" if mode == "recordings" else None
                make = functools.partial(_stream, location, w, options, batch=batch, partial=partial,
                                         crops_per_recording=crops.get(mode, 1))
                files = sorted(str(p) for p in Path(path).glob("*.tar")) if where == "local" else ()
                methods.append(Method(f"{mode}-{where}", f"{label} ({mode})", w, "shardkit", make=make, files=files,
                                      fork=w == 0))
    return methods


def _stream(location: str, workers: int, options: dict[str, str] | None, **kw: Any) -> Iterator[float]:
    return shardkit_stream(location, workers, storage_options=options, **kw)


# ------------------------------------------------------------------------------------------ raw ceiling


def _raw_stream(url: str, options: dict[str, str] | None, names: list[tuple[str, int]], concurrency: int,
                seconds: float) -> Iterator[float]:
    """:func:`raw_gets` as a one-step clip iterator for :func:`run_forked` (yields the result as clips)."""
    yield 0.0
    r = raw_gets(url, options, names, concurrency=concurrency, seconds=seconds)
    yield r["bytes"] / CLIP_BYTES


def measure_raw(servers: Servers, segments: Path, *, seconds: float, log: Callable[[str], None] = _log
                ) -> list[dict[str, Any]]:
    """The raw GET ceiling of every endpoint, at each of :data:`RAW_CONCURRENCY`."""
    names = [(p.name, p.stat().st_size) for p in sorted(Path(segments).glob("*.tar"))]
    out = []
    for e in servers.endpoints:
        for c in RAW_CONCURRENCY:
            make = functools.partial(_raw_stream, e.location("segments"), e.options(), names, c, seconds)
            run = run_forked(make, 1e-9, 1e18)
            mb = run["clips"] * CLIP_BYTES / MB / max(run["seconds"], 1e-9)
            out.append({"where": e.where, "concurrency": c, "window_bytes": RAW_WINDOW, "mb_per_s": round(mb, 1),
                        "clips_per_s": round(mb * MB / CLIP_BYTES, 1), "seconds": round(run["seconds"], 2)})
            log(f"  raw GET {e.where:<10} {c:>2} in flight: {mb:8.1f} MB/s = {mb * MB / CLIP_BYTES:8.0f} clips/s "
                f"of 16 MB GETs (load {load1()})")
    return out


# ------------------------------------------------------------------------------------------ run


def measure_remote(sets: dict[str, Path], *, seconds: float, repeats: int, workers: int = 2, batch: int = BATCH,
                   crops: dict[str, int] | None = None, delay: float = DELAY, max_clips: float = 1e9,
                   raw_seconds: float = 2.0, warmup: float = WARMUP, servers: Sequence[str] = SERVERS,
                   delays: Sequence[float] | None = None, log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Every (set, place, process count) round-robin, the raw GET ceilings, ratios and the targets. Each run
    reads ``warmup`` seconds untimed after its first batch (the read-ahead's head start), then ``seconds``
    timed. ``delay``: the latency the target is judged at (added to ``delays`` if missing)."""
    delays = sorted({*(DELAYS if delays is None else delays), delay})
    doc: dict[str, Any] = {"delay_s": delay, "delays_s": delays, "servers": list(servers), "seconds": seconds,
                           "warmup_s": warmup, "repeats": repeats, "workers": workers, "load": {"start": load1()}}
    why = missing(servers)
    if why is not None:
        doc.update(skipped=why, results=[], raw=[], targets=_targets(doc, _ms(delay)))
        log(f"  object storage: skipped ({why})")
        return doc
    run = start_servers(sets, servers, delays)
    try:
        doc["endpoints"] = [{"where": e.where, "label": e.label, "delay_s": e.delay} for e in run.endpoints]
        if run.s3:
            t0 = time.perf_counter()
            from benchmarks.loopback import upload

            sizes = {mode: upload(run.s3, path, BUCKET, f"{mode}/") for mode, path in sets.items()}
            doc["upload"] = {"bytes": sizes, "seconds": round(time.perf_counter() - t0, 1)}
            log(f"  uploaded {sum(sizes.values()) / MB:.0f} MB to moto in {doc['upload']['seconds']} s (boto3)")
        methods = build_methods(run, sets, workers=workers, batch=batch, crops=crops or {})
        from benchmarks import packbench

        results = measure_all(methods, seconds=seconds, max_clips=max_clips, repeats=repeats, warmup=warmup,
                              before=lambda m: packbench.warm(list(m.files)), log=log)
        doc["results"] = [r.to_dict() for r in results]
        doc["raw"] = measure_raw(run, sets["segments"], seconds=raw_seconds, log=log)
    finally:
        run.stop()
    doc["load"]["end"] = load1()
    doc["ratios"] = _ratios(doc["results"])
    doc["targets"] = _targets(doc, _ms(delay))
    return doc


def _find(results: list[dict], method: str, workers: int) -> dict | None:
    return next((r for r in results if r["method"] == method and r["workers"] == workers and r["status"] == "ok"),
                None)


def _wheres(results: list[dict]) -> list[str]:
    """The remote places of the results (``http-0ms``, ``s3-50ms``, …), in the order measured."""
    out: list[str] = []
    for r in results:
        where = r["method"].split("-", 1)[1]
        if where != "local" and where not in out:
            out.append(where)
    return out


def _ratios(results: list[dict], ms: int | None = None) -> dict[str, float | None]:
    """``{mode}/{where}/local_{procs}``: each remote row's clips/s over the local row's (same mode, procs)."""
    out: dict[str, float | None] = {}
    for mode in ("segments", "recordings"):
        for w in sorted({r["workers"] for r in results}):
            local = _find(results, f"{mode}-local", w)
            for where in _wheres(results):
                r = _find(results, f"{mode}-{where}", w)
                key = f"{mode}/{where}/local_{'1proc' if w == 0 else f'{w}workers'}"
                out[key] = round(r["clips_per_s"] / local["clips_per_s"], 4) if r and local and local[
                    "clips_per_s"] else None
    return out


def target_where(doc: dict[str, Any], ms: int) -> str:
    """The endpoint the target is judged on: the HTTP range server at ``ms``, else moto at ``ms``."""
    if "http" in doc.get("servers", ["http"]):
        return f"http-{ms}ms"
    return f"s3-{ms}ms"


def _targets(doc: dict[str, Any], ms: int) -> list[dict[str, Any]]:
    rows = []
    where = target_where(doc, ms)
    server = "the HTTP range server" if where.startswith("http") else "moto S3"
    for w in (0, doc["workers"]):
        tag = "1proc" if w == 0 else f"{w}workers"
        value = doc.get("ratios", {}).get(f"segments/{where}/local_{tag}")
        met = None if value is None else value >= TARGET
        local = _find(doc.get("results", []), "segments-local", w)
        remote = _find(doc.get("results", []), f"segments-{where}", w)
        detail = (f"{remote['clips_per_s']:,.0f} vs {local['clips_per_s']:,.0f} clips/s" if remote and local
                  else doc.get("skipped", "not measured"))
        rows.append({"target": f"object storage ({server} on loopback) with {ms} ms first-byte latency ≥ {TARGET}× "
                               f"the local disk (segments, {_procs(w)}, default settings)", "value": value,
                     "goal": TARGET, "met": met, "shown": "n/a" if value is None else f"{value:.2f}×",
                     "detail": detail})
    return rows


def ceiling(remote: dict[str, Any], where: str) -> dict[str, Any] | None:
    """The fastest raw GET run of endpoint ``where`` (``http-0ms``, ``s3-50ms``), or None."""
    return max((x for x in remote.get("raw", []) if x["where"] == where), key=lambda x: x["mb_per_s"], default=None)


def bound(remote: dict[str, Any], target: str) -> str | None:
    """What this run measured that bears on a missed object-storage ``target`` (figures only)."""
    if remote.get("skipped"):
        return None
    ms = round(remote["delay_s"] * 1000)
    where = target_where(remote, ms)
    w = 0 if "1 proc" in target else remote["workers"]
    res = remote["results"]
    straight_where = where.rsplit("-", 1)[0] + "-0ms"
    local, slow, straight = (_find(res, f"segments-{x}", w) for x in ("local", where, straight_where))
    top, top0 = ceiling(remote, where), ceiling(remote, straight_where)
    if not (local and slow and straight and top and top0):
        return None
    fraction, straight_fraction = (x["clips_per_s"] / local["clips_per_s"] for x in (top, top0))
    verdict = f"{fraction:.2f}× and {straight_fraction:.2f}× the local figure"
    if max(fraction, straight_fraction) < TARGET:
        verdict += (" (even with no added latency this server delivers less than the target, so no client reaches "
                    "it here)")
    return (f"{slow['clips_per_s']:,.0f} clips/s ({slow['mb_per_s']:,.0f} MB/s) against {local['clips_per_s']:,.0f} "
            f"from the local disk; {straight['clips_per_s']:,.0f} clips/s with no added latency. The server alone "
            f"(16 MB ranged GETs, no shardkit code) gave at most {top['mb_per_s']:,.0f} MB/s = "
            f"{top['clips_per_s']:,.0f} clips/s at {ms} ms ({top['concurrency']} in flight) and "
            f"{top0['mb_per_s']:,.0f} MB/s straight: {verdict}; shardkit reached "
            f"{slow['mb_per_s'] / top['mb_per_s']:.2f}× that ceiling.")


# ------------------------------------------------------------------------------------------ report


def markdown(remote: dict[str, Any]) -> str:
    """The object-storage section of the report (tables, the raw ceiling, the targets)."""
    if remote.get("skipped"):
        return f"Not measured here: {remote['skipped']}.\n"
    res = remote["results"]
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
    lines = [_intro(remote), "",
             _md_table(["method", "procs", "clips/s", "MB/s", "× local", "× raw GET ceiling", "runs", "what"], rows),
             "",
             "Each server's own ceiling, no shardkit in the loop: obstore ranged GETs of 16 MB over the segment "
             "shards, front to back, k in flight.",
             "",
             _md_table(["endpoint", "GETs in flight", "MB/s", "clips/s equivalent"], raw),
             "",
             "`× raw GET ceiling`: the row's MB/s over the fastest raw GET run against the same endpoint. DataLoader "
             "workers share a private shard cache on disk: they download each shard once, and the epochs after the "
             "first read it from there (per-epoch figures: `python -m benchmarks.remote_workers`).",
             ""]
    lines += [f"Target: {t['target']}: {t['shown']} — {'met' if t['met'] else 'n/a' if t['met'] is None else 'missed'}"
              f" ({t['detail']})." for t in remote["targets"]]
    return "\n".join(lines) + "\n"


def _intro(remote: dict[str, Any]) -> str:
    parts = []
    if "http" in remote.get("servers", ()):
        ms = ", ".join(f"{_ms(d)}" for d in remote.get("delays_s", ()))
        parts.append(f"an HTTP range server on loopback (`http-*`: ranged GETs sent with `os.sendfile`, so a GET costs "
                     f"its range; one server process per first-byte delay, {ms} ms, held back by the server itself)")
    if "moto" in remote.get("servers", ("moto",)):
        up = remote.get("upload", {})
        parts.append(f"moto's S3 server (`s3-*`; straight and behind a proxy adding "
                     f"{_ms(max(remote.get('delays_s', [remote['delay_s']])))} ms before every answer's first byte; "
                     f"{sum(up.get('bytes', {}).values()) / MB:,.0f} MB uploaded with boto3 in {up.get('seconds', 0)} s"
                     "; moto reads the whole object for every ranged GET)")
    return (f"Read from {' and '.join(parts)}, each in its own process. `ShardDataset` with default settings (5 s "
            f"crops, shuffled, batch {BATCH}); 1 proc reads in a forked child of the measuring process, `DL×K` "
            f"through a DataLoader. Each run reads {remote.get('warmup_s', 0):g} s untimed after its first batch "
            f"(the read-ahead's head start), then ≤ {remote['seconds']:g} s timed; best of {remote['repeats']} "
            f"round-robin runs; load average {remote['load']['start']} → {remote['load'].get('end')}.")


def _default_sets(out: Path) -> dict[str, Path]:
    return {"segments": out / "shards-segments", "recordings": out / "shards-recordings"}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.remote", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segments", type=Path, help="segments-mode set (default OUT/shards-segments)")
    ap.add_argument("--recordings", type=Path, help="recordings-mode set (default OUT/shards-recordings); read "
                    "only with --modes segments,recordings")
    ap.add_argument("--modes", default="segments", help="sets to read, comma-separated (default segments; "
                    "recordings: random crops, each fetches its whole member)")
    ap.add_argument("--servers", default=",".join(SERVERS), help="http and/or moto, comma-separated (default http)")
    ap.add_argument("--delays", default=",".join(f"{d:g}" for d in DELAYS),
                    help="first-byte delays of the endpoints, seconds, comma-separated (default 0,0.01,0.05)")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--quick", action="store_true", help="short runs (smoke)")
    ap.add_argument("--seconds", type=float, help=f"timed seconds per run (default {SECONDS:g}; quick 0.3)")
    ap.add_argument("--repeats", type=int, help="round-robin rounds, the best is reported (default 3; quick 1)")
    ap.add_argument("--delay", type=float, default=DELAY, help="the first-byte latency the target is judged at")
    ap.add_argument("--warmup", type=float, default=WARMUP, help=f"untimed seconds after the first batch of every "
                    f"run (default {WARMUP:g}; quick 0)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=BATCH)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    given = {"segments": args.segments, "recordings": args.recordings}
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if "segments" not in modes or not set(modes) <= set(given):
        ap.error("--modes: segments, or segments,recordings")
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if not servers or not set(servers) <= {"http", "moto"}:
        ap.error("--servers: http, moto or http,moto")
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
                            raw_seconds=0.3 if args.quick else 2.0, warmup=0.0 if args.quick else args.warmup,
                            servers=servers, delays=[float(x) for x in args.delays.split(",") if x.strip()])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "remote.json").write_text(json.dumps(remote, indent=1, default=str) + "\n")
    _log(markdown(remote))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
