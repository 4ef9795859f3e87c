"""Peak resident memory of a pack against recording length (``python -m benchmarks.rss_decode``).

Writes a 1-minute and a 1-hour 48 kHz stereo FLAC (a tone with a little noise, written in blocks),
packs each in a fresh process with the default options (32 kHz mono, recordings of at most 300 s)
and prints one JSON object: per recording and worker count the peak RSS of the pack process
(``VmHWM``) and of its largest worker (``RUSAGE_CHILDREN``), and ``diff_mb``: 1 hour minus 1 minute
(the issue-14 target is under 150 MB) and the 1-hour pack's seconds. ``--baseline PATH`` packs the
same files with another checkout's shardkit (e.g. one before streaming decode) in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_RATE = 48000


def write_flac(path: Path, seconds: int) -> Path:
    """A 48 kHz stereo 16-bit FLAC of ``seconds`` s, written 10 s at a time."""
    import numpy as np
    import soundfile as sf

    if path.exists():
        return path
    rng = np.random.default_rng(0)
    t = np.arange(_RATE * 10) / _RATE
    tone = 0.2 * np.sin(2 * np.pi * 440 * t)
    tmp = path.with_suffix(".part")
    with sf.SoundFile(tmp, "w", _RATE, 2, format="FLAC", subtype="PCM_16") as f:
        for _ in range(max(1, seconds // 10)):
            noise = 0.01 * rng.standard_normal((t.size, 2))
            f.write((tone[:, None] * [1.0, 0.6] + noise).astype(np.float32))
    tmp.rename(path)
    return path


def child(src: str, out: str, workers: int) -> None:
    """Pack ``src`` into ``out`` and print the peak RSS of this process and of its largest worker."""
    import resource
    import time

    import shardkit

    t0 = time.perf_counter()
    shardkit.pack(src, out, workers=workers)
    seconds = round(time.perf_counter() - t0, 2)
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"main_kb": hwm, "worker_kb": kids if workers > 1 else 0, "pack_seconds": seconds}))


def measure(src: Path, out: Path, workers: int, pythonpath: str) -> dict[str, int]:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(src), str(out), str(workers)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=pythonpath)
    got = json.loads(res.stdout.strip().splitlines()[-1])
    got["peak_kb"] = max(got["main_kb"], got["worker_kb"])
    return got


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", default=None, help="where the FLACs and packs go (default: a temp folder)")
    ap.add_argument("--long-seconds", type=int, default=3600)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--baseline", default=None, help="another checkout's root to measure the same way")
    args = ap.parse_args(argv)
    root = Path(args.workdir or tempfile.mkdtemp(prefix="shardkit-rss-decode-"))
    root.mkdir(parents=True, exist_ok=True)
    here = str(Path(__file__).resolve().parents[1])
    runs = {"this": here}
    if args.baseline:
        runs["baseline"] = str(Path(args.baseline).resolve())
    result: dict[str, object] = {"source": "48 kHz stereo FLAC", "options": "defaults (32 kHz mono, recordings, 300 s)"}
    for name, seconds in (("short", 60), ("long", args.long_seconds)):
        src = root / f"src-{name}"
        src.mkdir(exist_ok=True)
        write_flac(src / f"{name}.flac", seconds)
    for run, path in runs.items():
        for workers in args.workers:
            peaks = {}
            for name in ("short", "long"):
                out = root / f"out-{run}-{name}-{workers}"
                peaks[name] = measure(root / f"src-{name}", out, workers, path)
                subprocess.run(["rm", "-rf", str(out)], check=True)
            result[f"{run}_workers{workers}"] = {
                "short_peak_mb": round(peaks["short"]["peak_kb"] / 1024, 1),
                "long_peak_mb": round(peaks["long"]["peak_kb"] / 1024, 1),
                "diff_mb": round((peaks["long"]["peak_kb"] - peaks["short"]["peak_kb"]) / 1024, 1),
                "long_pack_seconds": peaks["long"]["pack_seconds"],
                "detail": peaks,
            }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
