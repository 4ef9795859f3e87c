"""Timing: run each method's endless clip iterator for a bounded time (or clip count), in rounds.

The first step of every run is not timed (DataLoader workers starting, files opening, a shuffle
buffer filling): it is reported as ``startup_s``. The timed part then runs until ``seconds`` have
passed or ``max_clips`` clips were delivered, whichever comes first.

With ``repeats`` > 1 the methods run round-robin (every method once per round) so that a burst of
load from other processes hits all of them alike, and each method's best run is reported (on a
shared machine the other runs lose time to neighbours; they never gain any). Every run's rate is
kept in ``runs``. Before each run the method's files are read once (``before``), so every run
starts from a warm page cache even if the kernel dropped some pages in between. The CPU time of
the measuring process (user and system) is recorded per run: for an in-process reader the
system share is the kernel copying page-cache pages into the batch.
"""

from __future__ import annotations

import functools
import gc
import os
import resource
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.common import _procs
from benchmarks.methods import CLIP_BYTES, Method


@dataclass
class Result:
    method: str
    label: str
    workers: int
    group: str
    status: str = "ok"               #: "ok" | "skipped" | "error"
    reason: str = ""
    clips: float = 0.0               #: clips timed in the best run
    seconds: float = 0.0             #: its timed seconds
    clips_per_s: float = 0.0
    mb_per_s: float = 0.0            #: PCM MB/s (10⁶ bytes) = clips/s × CLIP_BYTES
    startup_s: float = 0.0           #: untimed first step of the best run
    user_share: float = 0.0          #: user CPU of the measuring process / timed seconds (best run)
    sys_share: float = 0.0           #: system CPU of the measuring process / timed seconds (best run)
    runs: list[float] = field(default_factory=list)   #: clips/s of every run
    load: list[float] = field(default_factory=list)   #: 1-min load average before every run
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load1() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return -1.0


def run_once(make: Callable[[], Iterator[float]], seconds: float, max_clips: float, warmup: float = 0.0
             ) -> dict[str, float]:
    """One bounded run: clips, timed seconds, startup seconds, user/system CPU seconds of this process.
    ``warmup``: seconds of steps after the first one that are not timed either (counted in ``startup``):
    a reader that fetched ahead while its first step waited starts the timed part with a head start."""
    t_start = time.perf_counter()
    it = make()
    try:
        next(it)
        t_warm = time.perf_counter()
        while time.perf_counter() - t_warm < warmup:
            next(it)
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        clips = 0.0
        elapsed = 0.0
        while elapsed < seconds and clips < max_clips:
            clips += next(it)
            elapsed = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
    return {"clips": clips, "seconds": elapsed, "startup": t0 - t_start,
            "user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime}


def run_forked(make: Callable[[], Iterator[float]], seconds: float, max_clips: float, warmup: float = 0.0, *,
               timeout: float = 600) -> dict[str, float]:
    """:func:`run_once` in a forked child of this process (its CPU times are the child's); an exception in the
    child is raised here as a ``RuntimeError`` with its text."""
    return call_forked(functools.partial(run_once, make, seconds, max_clips, warmup), timeout=timeout)


def call_forked(fn: Callable[[], Any], *, timeout: float = 600, daemon: bool = True) -> Any:
    """``fn()`` in a forked child of this process, its result sent back; an exception in the child is raised
    here as a ``RuntimeError`` with its text. ``daemon=False``: the child may start processes of its own
    (DataLoader workers)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_forked_child, args=(send, fn), daemon=daemon)
    child.start()
    send.close()
    try:
        if not recv.poll(timeout):
            raise RuntimeError(f"the forked run gave no result within {timeout:.0f} s")
        status, value = recv.recv()
    except EOFError:
        raise RuntimeError(f"the forked run died (exit code {child.exitcode})") from None
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join()
    if status != "ok":
        raise RuntimeError(value)
    return value


def _forked_child(send: Any, fn: Callable[[], Any]) -> None:
    try:
        send.send(("ok", fn()))
    except BaseException as exc:  # reported to the parent, which raises it
        send.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        send.close()
        os._exit(0)


def measure_all(methods: Sequence[Method], *, seconds: float, max_clips: float, repeats: int = 1,
                before: Callable[[Method], None] | None = None, warmup: float = 0.0,
                log: Callable[[str], None] = print) -> list[Result]:
    results = [Result(m.name, m.label, m.workers, m.group, note=m.note) for m in methods]
    best: list[dict[str, float] | None] = [None] * len(methods)
    for m, r in zip(methods, results):
        if m.skip is not None or m.make is None:
            r.status, r.reason = "skipped", m.skip or "not available"
            log(f"  {m.name:<26} {_procs(m.workers):<6}  skipped: {r.reason}")
    for rnd in range(max(1, repeats)):
        if repeats > 1:
            log(f"  round {rnd + 1} of {repeats}")
        for k, (m, r) in enumerate(zip(methods, results)):
            if r.status != "ok":
                continue
            if before is not None:
                before(m)
            gc.collect()
            r.load.append(load1())
            try:
                run = (run_forked if m.fork else run_once)(m.make, seconds, max_clips, warmup)  # type: ignore[arg-type]
            except Exception as exc:
                r.status, r.reason = "error", f"{type(exc).__name__}: {exc}"
                log(f"  {m.name:<26} {_procs(m.workers):<6}  ERROR {r.reason}\n{traceback.format_exc()}")
                continue
            rate = run["clips"] / run["seconds"] if run["seconds"] > 0 else 0.0
            r.runs.append(round(rate, 2))
            b = best[k]
            if b is None or rate > b["clips"] / max(b["seconds"], 1e-9):
                best[k] = run
            log(f"  {m.name:<26} {_procs(m.workers):<6} {rate:>10.1f} clips/s {rate * CLIP_BYTES / 1e6:>9.1f} MB/s"
                f"  (startup {run['startup']:.2f} s, load {r.load[-1]})")
    for r, b in zip(results, best):
        if r.status != "ok" or b is None:
            continue
        r.clips, r.seconds, r.startup_s = round(b["clips"], 2), round(b["seconds"], 4), round(b["startup"], 3)
        r.clips_per_s = round(b["clips"] / b["seconds"], 2) if b["seconds"] > 0 else 0.0
        r.mb_per_s = round(r.clips_per_s * CLIP_BYTES / 1e6, 2)
        r.user_share = round(b["user"] / b["seconds"], 3) if b["seconds"] > 0 else 0.0
        r.sys_share = round(b["sys"] / b["seconds"], 3) if b["seconds"] > 0 else 0.0
    return results
