"""Block decoding against whole-file decoding, in one process (``python -m benchmarks.decode_speed
--baseline OTHER_CHECKOUT``): the time :func:`shardkit.ingest.decode.decode_file` takes over a corpus
of Ogg Vorbis files (``--files``, 3–30 s at 44.1 kHz, resampled to 32 kHz) with this checkout's
decode module and with the baseline checkout's, alternating, best of ``--repeats`` in CPU seconds;
prints both and the ratio as JSON, and whether both give the same PCM."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from shardkit.synth import chirp, write_audio


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _corpus(root: Path, files: int) -> list[Path]:
    rng = np.random.default_rng(0)
    out = []
    for n in range(files):
        path = root / f"r{n:03d}.ogg"
        if not path.exists():
            write_audio(path, chirp(float(rng.uniform(3, 30)), 44100, 1 + n % 2, n), 44100)
        out.append(path)
    return out


def _run(module: ModuleType, files: list[Path]) -> tuple[float, str]:
    h = hashlib.sha256()
    t0 = time.process_time()  # CPU seconds of this process: decoding is single-threaded, and a busy
    for f in files:           # shared machine moves wall time by ±10 % between runs
        h.update(module.decode_file(f, sample_rate=32000).pcm.tobytes())
    return time.process_time() - t0, h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--baseline", required=True, help="root of another checkout (its shardkit/ingest/decode.py)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--files", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    files = _corpus(Path(args.workdir or tempfile.mkdtemp(prefix="shardkit-decode-")), args.files)
    here = Path(__file__).resolve().parents[1] / "shardkit" / "ingest" / "decode.py"
    mods = {"this": _load(here, "_decode_this"),
            "baseline": _load(Path(args.baseline) / "shardkit" / "ingest" / "decode.py", "_decode_baseline")}
    best, digest = {k: float("inf") for k in mods}, {}
    for _ in range(args.repeats):
        for name, module in mods.items():
            seconds, digest[name] = _run(module, files)
            best[name] = min(best[name], seconds)
    print(json.dumps({"files": len(files), "this_cpu_s": round(best["this"], 3),
                      "baseline_cpu_s": round(best["baseline"], 3), "ratio": round(best["this"] / best["baseline"], 3),
                      "same_pcm": digest["this"] == digest["baseline"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
