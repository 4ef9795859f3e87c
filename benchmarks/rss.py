"""Peak resident memory of one reader, measured in a fresh process (``python -m benchmarks.rss``).

Prints one JSON object: ``rss_python_kb`` (the bare interpreter), ``rss_imports_kb`` (after
importing torch, numpy, shardkit, webdataset), ``peak_kb`` (the process's peak resident set while
the reader streams for ``--seconds``, never less than ``rss_imports_kb``) and ``reader_kb`` =
``peak_kb − rss_imports_kb``: what the reader itself adds (buffers, index, shuffle state).

Peak RSS is VmHWM from /proc/self/status (reset after the imports through /proc/self/clear_refs
where the kernel allows it), else ``resource.getrusage``'s ru_maxrss, else psutil.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_kb() -> int:
    v = _status_kb("VmRSS")
    if v is not None:
        return v
    try:
        import psutil

        return int(psutil.Process().memory_info().rss // 1024)
    except ImportError:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_kb() -> int:
    v = _status_kb("VmHWM")
    if v is not None:
        return v
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def reset_peak() -> bool:
    """Make VmHWM restart from the current RSS (Linux ≥ 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reader", choices=("shardkit", "webdataset"), required=True)
    ap.add_argument("--path", required=True, help="shard set folder (shardkit) or a shard list file (webdataset)")
    ap.add_argument("--window", default="256MB", help="shardkit shuffle_window")
    ap.add_argument("--shuffle", type=int, default=1000, help="webdataset sample shuffle buffer")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args(argv)

    rss_python = rss_kb()
    import numpy  # noqa: F401
    import torch  # noqa: F401
    import webdataset  # noqa: F401

    import shardkit.dataset.dataset  # noqa: F401
    from benchmarks import methods

    rss_imports = rss_kb()
    reset = reset_peak()
    if args.reader == "shardkit":
        stream = methods.shardkit_stream(args.path, 0, batch=args.batch, window=args.window)
    else:
        with open(args.path) as f:
            urls = [line.strip() for line in f if line.strip()]
        stream = methods.webdataset_stream(urls, 0, shuffle=args.shuffle, batch=args.batch)
    t0 = time.perf_counter()
    clips = 0.0
    while time.perf_counter() - t0 < args.seconds:
        clips += next(stream)
    stream.close()
    peak = peak_kb() if reset else max(peak_kb(), rss_imports)
    print(json.dumps({
        "reader": args.reader, "window": args.window if args.reader == "shardkit" else None,
        "shuffle_buffer": args.shuffle if args.reader == "webdataset" else None,
        "rss_python_kb": rss_python, "rss_imports_kb": rss_imports, "peak_kb": peak,
        "reader_kb": max(0, peak - rss_imports), "peak_reset_after_imports": reset,
        "clips": round(clips, 1), "seconds": round(time.perf_counter() - t0, 3),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
