"""Signals at seeded points of a pack: SIGINT to the process group (Ctrl-C in a terminal), SIGTERM and
SIGKILL to the pack process, each with 1 and 2 decoding workers, at points drawn from a seeded RNG
over the pack's duration. Each case: the interrupted pack exits as documented (130 / 143 / -9) with no
traceback, leaves no ``*.tmp`` after SIGINT/SIGTERM, no decoding process outlives it, and re-running
the same command finishes with every file byte-identical to an uninterrupted pack (no sample lost)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from audio_factory import make_corpus
from procs import alive, children

SIGNALS = {"SIGINT": (signal.SIGINT, 130), "SIGTERM": (signal.SIGTERM, 143), "SIGKILL": (signal.SIGKILL, -9)}
POINTS = 3  #: seeded points per signal and worker count


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "shardkit_cli", *map(str, args)]


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The corpus, the pack's arguments (OUT as None), the uninterrupted pack's files and its seconds."""
    root = tmp_path_factory.mktemp("signals")
    csv = make_corpus(root / "c", n_files=24, seconds=(2.0, 7.0), sample_rate=44100, seed=5)
    args = ["pack", root / "c" / "audio", None, "--metadata", csv, "--shard-size", "200KB"]
    ref = root / "ref"
    proc = subprocess.Popen(_cli(*[a if a is not None else ref for a in args], "--workers", 2),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (ref / "pack.lock").exists() and proc.poll() is None:
        time.sleep(0.005)
    t0 = time.monotonic()
    assert proc.wait(timeout=300) == 0
    files = _files(ref)
    assert sum(n.endswith(".tar") for n in files) >= 8
    return root, args, files, time.monotonic() - t0  # seconds from the lock to the end (2 workers)


CASES = [(name, workers, point) for name in SIGNALS for workers in (1, 2) for point in range(POINTS)]


@pytest.mark.parametrize(("name", "workers", "point"), CASES, ids=[f"{n}-w{w}-p{p}" for n, w, p in CASES])
def test_signal_at_a_seeded_point(reference, name, workers, point):
    root, args, ref_files, seconds = reference
    sig, code = SIGNALS[name]
    out = root / f"{name}-{workers}-{point}"
    argv = _cli(*[a if a is not None else out for a in args], "--workers", workers)
    delay = random.Random(f"{name}-{workers}-{point}").uniform(0.0, 0.7) * seconds
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / "pack.lock").exists() and proc.poll() is None:
        time.sleep(0.005)  # the pack has started (the CLI is past its imports and its signal handlers)
    fire = time.monotonic() + delay
    while time.monotonic() < fire and proc.poll() is None:
        seen |= children(proc.pid)
        time.sleep(0.005)
    if proc.poll() is None:
        seen |= children(proc.pid)
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)  # Ctrl-C reaches the whole foreground process group
        else:
            proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    finished = (out / "manifest.json").exists()
    print(f"{name} w{workers} at {delay:.2f} s of {seconds:.2f}: {'finished first' if finished else 'interrupted'}")
    # a pack that finished before the signal may still die of it while the interpreter shuts down
    assert proc.returncode in ((0, code, -sig) if finished else (code,)), stderr
    assert "Traceback" not in stderr, stderr
    if sig != signal.SIGKILL:
        assert not list(out.glob("*.tmp")), "an interrupted pack left temp files"
        if not finished:
            assert "re-run the same command" in stderr
    wait = time.monotonic() + 20
    while time.monotonic() < wait and any(alive(p) for p in seen):
        time.sleep(0.05)
    assert not [p for p in seen if alive(p)], f"processes outlived the pack after {name}"
    subprocess.run(argv, check=True, capture_output=True)
    got = _files(out)
    assert got.keys() == ref_files.keys()
    assert got == ref_files, f"{name} at {delay:.2f} s with {workers} workers: bytes differ after the re-run"
