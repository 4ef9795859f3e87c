"""DataLoader workers on object storage (issue 23, part 5): clips/s and the bytes fetched per epoch.

    python -m benchmarks.remote_workers [--segments DIR] [--delay 0.05] [--epochs 3] [--repeats 3] [--workers 2]

The segments set (default ``bench-out/shards-segments``, which ``python -m benchmarks.run`` packs) is served
by the HTTP range server of :mod:`benchmarks.loopback` in a process of its own, holding back every answer's
first byte by ``--delay`` (default 50 ms); it counts the body bytes it sends (``SENT_PATH``), which is what
every reader here fetched, whichever process fetched it. Each method reads ``--epochs`` epochs with a fresh
``ShardDataset`` (5 s crops, shuffled, batch 64, default settings) in a forked child of this process (which
never starts obstore itself):

- ``1 proc``: the dataset iterated in that process (the window cache, 512 MB);
- ``DL×K``: ``DataLoader(num_workers=K, persistent_workers=True)`` with default settings: the workers share
  a private shard cache (:mod:`shardkit.storage.cache.worker`);
- ``DL×K windows``: the same with ``cache_dir=False``: each worker fetches its own windows (before issue 23).

Per epoch: clips/s (from ``iter()`` to the last batch: the first epoch includes starting the workers and the
first download) and fetched bytes over the set's shard bytes. Methods run round-robin, ``--repeats`` rounds;
ranges over the rounds. Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.common import _log
from benchmarks.harness import call_forked
from benchmarks.loopback import SENT_PATH
from benchmarks.methods import BATCH, CLIP_SECONDS, _loader
from benchmarks.remote import start_servers

#: first-byte latency of the target (seconds)
DELAY = 0.05
METHODS = ("1 proc", "DL×{k}", "DL×{k} windows")


def _sent(url: str) -> int:
    with urllib.request.urlopen(url + SENT_PATH, timeout=30) as r:
        return int(r.read())


def read_epochs(location: str, server: str, method: str, workers: int, epochs: int) -> list[dict[str, float]]:
    """``epochs`` epochs of ``method`` over the set at ``location``: seconds, clips and bytes fetched of each."""
    from shardkit import ShardDataset

    kw: dict[str, Any] = {"cache_dir": False} if method.endswith("windows") else {}
    ds = ShardDataset(location, batch_size=BATCH, crop_seconds=CLIP_SECONDS, shuffle=True, seed=0, **kw)
    source = ds if method == "1 proc" else _loader(ds, workers, persistent_workers=True)
    out = []
    try:
        for epoch in range(epochs):
            ds.set_epoch(epoch)
            before, t0, clips = _sent(server), time.perf_counter(), 0.0
            for batch in source:
                clips += float(batch["valid"].sum())
            out.append({"seconds": time.perf_counter() - t0, "clips": clips, "fetched": _sent(server) - before})
    finally:
        del source
        ds.close()
    return out


def measure(segments: Path, *, delay: float = DELAY, epochs: int = 3, repeats: int = 3, workers: int = 2,
            windows: bool = True) -> dict[str, Any]:
    """Every method (``windows``: with ``DL×K windows``), round-robin, ``repeats`` rounds: per-epoch clips/s and
    fetched/set bytes."""
    set_bytes = sum(p.stat().st_size for p in Path(segments).glob("*.tar"))
    servers = start_servers({"segments": segments}, ("http",), (delay,))
    names = [m.format(k=workers) for m in METHODS if windows or not m.endswith("windows")]
    runs: dict[str, list[list[dict[str, float]]]] = {m: [] for m in names}
    try:
        e = servers.endpoints[0]
        for r in range(repeats):
            for m in names:
                got = call_forked(functools.partial(read_epochs, e.location("segments"), e.url, m, workers, epochs),
                                  daemon=False)
                runs[m].append(got)
                _log(f"  round {r + 1} {m:<14} " + "  ".join(
                    f"epoch {i}: {x['clips'] / x['seconds']:6,.0f} clips/s, fetched {x['fetched'] / set_bytes:.2f}× "
                    "the set" for i, x in enumerate(got)))
    finally:
        servers.stop()
    return {"delay_s": delay, "epochs": epochs, "repeats": repeats, "workers": workers, "set_bytes": set_bytes,
            "runs": runs, "load_end": os.getloadavg()[0]}


def _range(xs: list[float], fmt: str) -> str:
    return f"{min(xs):{fmt}}–{max(xs):{fmt}}"


def summary(doc: dict[str, Any]) -> str:
    """A markdown table: per method, first-epoch and later-epoch clips/s and fetched/set bytes (ranges)."""
    lines = [f"At {doc['delay_s'] * 1000:.0f} ms first-byte latency, {doc['set_bytes'] / 1e6:,.0f} MB segments set, "
             f"{doc['repeats']} rounds of {doc['epochs']} epochs (ranges over rounds):", "",
             "| method | epoch 0 clips/s | later epochs clips/s | fetched/set, epoch 0 | fetched/set, later epochs |",
             "|---|---|---|---|---|"]
    for m, rounds in doc["runs"].items():
        first = [r[0] for r in rounds]
        later = [x for r in rounds for x in r[1:]]
        cells = [_range([x["clips"] / x["seconds"] for x in first], ",.0f"),
                 _range([x["clips"] / x["seconds"] for x in later], ",.0f") if later else "–",
                 _range([x["fetched"] / doc["set_bytes"] for x in first], ".2f"),
                 _range([x["fetched"] / doc["set_bytes"] for x in later], ".2f") if later else "–"]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    one = doc["runs"].get("1 proc")
    for m, rounds in doc["runs"].items():
        if one and m != "1 proc":  # each round's ratio: the same round's 1-process epoch 0 as baseline
            ratios = [(r[0]["clips"] / r[0]["seconds"]) / (b[0]["clips"] / b[0]["seconds"])
                      for r, b in zip(rounds, one)]
            lines.append(f"\nEpoch 0, {m} over 1 proc of the same round: {_range(ratios, '.2f')}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.remote_workers", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segments", type=Path, default=Path("bench-out/shards-segments"))
    ap.add_argument("--delay", type=float, default=DELAY)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-windows", action="store_true", help="leave out DL×K windows (cache_dir=False)")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    if not args.segments.is_dir():
        ap.error(f"{args.segments}: no shard set; run python -m benchmarks.run first or pass --segments")
    doc = measure(args.segments, delay=args.delay, epochs=args.epochs, repeats=args.repeats, workers=args.workers,
                  windows=not args.no_windows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "remote_workers.json").write_text(json.dumps(doc, indent=1) + "\n")
    _log(summary(doc))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
