"""What ``ShardDataset(verify_crc=True)`` costs (``python -m benchmarks.crc``).

Packs a synthetic set (16-bit WAV sources of noise, ``--files`` × ``--seconds`` s at 32 kHz) twice:
5 s segments (every member read whole: checked on every read) and recordings with 5 s random crops
(each member read whole and checked once per process, in the first epoch). Reads ``--epochs`` epochs
of each in this process (``num_workers=0``, warm page cache), with and without the check, alternating
runs so both see the same machine state, and prints clips/s and the ratio as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

import shardkit
from shardkit import PackOptions
from shardkit.dataset import ShardDataset


def make_sources(root: Path, files: int, seconds: float) -> Path:
    src = root / "src"
    if src.exists():
        return src
    rng = np.random.default_rng(0)
    for n in range(files):
        x = (0.1 * rng.standard_normal(int(seconds * 32000))).astype(np.float32)
        (src / f"l{n % 5}").mkdir(parents=True, exist_ok=True)
        sf.write(src / f"l{n % 5}" / f"r{n:04d}.wav", x, 32000, subtype="PCM_16")
    return src


def clips_per_second(root: Path, epochs: int, verify: bool, crop: float | None) -> float:
    ds = ShardDataset(root, batch_size=64, crop_seconds=crop, verify_crc=verify, read_threads=1)
    clips, t0 = 0, time.perf_counter()
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        for batch in ds:
            clips += int(batch["valid"].sum())
    ds.close()
    return clips / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--files", type=int, default=120)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs of each; the best is kept")
    args = ap.parse_args(argv)
    root = Path(args.workdir or tempfile.mkdtemp(prefix="shardkit-crc-"))
    src = make_sources(root, args.files, args.seconds)
    sets = {
        "segments_5s": (PackOptions(mode="segments", segment_seconds=5.0), None),
        "recordings_crop_5s": (PackOptions(mode="recordings", max_seconds=60.0), 5.0),
    }
    result: dict[str, object] = {"files": args.files, "seconds": args.seconds, "epochs": args.epochs}
    for name, (opts, crop) in sets.items():
        out = root / name
        if not (out / "manifest.json").exists():
            shardkit.pack(src, out, options=opts, workers=2)
        best = {False: 0.0, True: 0.0}
        for _ in range(args.repeats):
            for verify in (False, True):
                best[verify] = max(best[verify], clips_per_second(out, args.epochs, verify, crop))
        result[name] = {"clips_per_s": round(best[False], 1), "clips_per_s_verify_crc": round(best[True], 1),
                        "ratio": round(best[True] / best[False], 3)}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
