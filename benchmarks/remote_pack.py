"""Pack into object storage: wall seconds of ``pack(SRC, "s3://…")`` against moto's S3 server on loopback (its own
process; with ``--delay``, behind the latency proxy that holds back every answer's first byte, as a
network does), with the uploads in the pack loop (``UPLOAD_QUEUE = 0``, the old way) and in the background upload
thread (the default), beside a local pack of the same inputs.

    python -m benchmarks.remote_pack SRC [--mode segments] [--workers 2] [--repeats 2] [--shard-size 128MB]
                                         [--delay 0.05]

Each pack runs in a child process (``python -c``), alternating the variants, best of ``--repeats``; every pack
goes to a fresh prefix or folder. Nothing is asserted; the figures are printed (and written as JSON with --out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, _log
from benchmarks.loopback import CREDENTIALS, s3_client
from benchmarks.remote import _serve

_PACK = r"""
import sys, time, shardkit, shardkit.write.upload as u
src, out, mode, workers, size, queue, staging = sys.argv[1:8]
u.UPLOAD_QUEUE = int(queue)
t0 = time.perf_counter()
shardkit.pack(src, out, options=shardkit.PackOptions(mode=mode, shard_size=size), workers=int(workers),
              **({"staging": staging} if out.startswith("s3://") else {}))
print(time.perf_counter() - t0)
"""


def _pack(src: Path, out: str, *, mode: str, workers: int, size: str, queue: int, staging: Path,
          endpoint: str) -> float:
    env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", _PACK, str(src), out, mode, str(workers), size, str(queue),
                        str(staging)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip()[-800:])
    return float(r.stdout.strip().splitlines()[-1])


def measure(src: Path, *, mode: str, workers: int, size: str, repeats: int, delay: float = 0.0
            ) -> dict[str, list[float]]:
    """Seconds of every run of each variant: ``local``, ``s3-in-loop`` (UPLOAD_QUEUE 0), ``s3-background``."""
    proc, endpoint = _serve("moto")
    procs = [proc]
    if delay:
        slow, endpoint_slow = _serve("proxy", endpoint, "--delay", str(delay))
        procs.append(slow)
    runs: dict[str, list[float]] = {"local": [], "s3-in-loop": [], "s3-background": []}
    try:
        s3_client(endpoint).create_bucket(Bucket="packs")
        with tempfile.TemporaryDirectory(prefix="shardkit-packbench-") as tmp:
            for rnd in range(repeats):
                for name, queue in (("local", 2), ("s3-in-loop", 0), ("s3-background", 2)):
                    out = (f"{tmp}/local-{rnd}" if name == "local" else f"s3://packs/{name}-{rnd}/")
                    secs = _pack(src, out, mode=mode, workers=workers, size=size, queue=queue,
                                 staging=Path(tmp) / f"staging-{name}-{rnd}",
                                 endpoint=endpoint_slow if delay else endpoint)
                    runs[name].append(round(secs, 2))
                    _log(f"  pack {name:<14} round {rnd + 1}: {secs:6.1f} s")
    finally:
        for p in procs:
            if p.stdin:
                p.stdin.close()
            p.wait(30)
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.remote_pack", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("--mode", default="segments")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shard-size", default="128MB")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--delay", type=float, default=0.05, help="first-byte latency of every request, seconds (0: "
                    "straight to moto)")
    ap.add_argument("--out", type=Path, help="write the runs as JSON here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    runs = measure(args.src, mode=args.mode, workers=args.workers, size=args.shard_size, repeats=args.repeats,
                   delay=args.delay)
    best = {k: min(v) for k, v in runs.items()}
    _log(f"best of {args.repeats}: " + ", ".join(f"{k} {v:.1f} s" for k, v in best.items())
         + f"; background / in-loop = {best['s3-background'] / best['s3-in-loop']:.2f} "
         f"({time.perf_counter() - t0:.0f} s in all)")
    if args.out:
        args.out.write_text(json.dumps({"runs": runs, "best": best, "args": vars(args)}, default=str, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
