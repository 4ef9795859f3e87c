"""What every benchmark script shares: the repository root, the machine description, logging, table helpers."""

from __future__ import annotations

import importlib
import os
import platform
import sys
from pathlib import Path
from typing import Any

#: the repository root (benchmarks run with it as the working directory)
ROOT = Path(__file__).resolve().parents[1]


def _log(msg: str) -> None:
    """One line of progress on stdout, flushed (the benchmarks are scripts: their output is the report)."""
    print(msg, flush=True)


def _procs(workers: int) -> str:
    """How a method reads: ``"1 proc"`` (in the measuring process) or ``"DL×K"`` (a DataLoader with K workers)."""
    return "1 proc" if workers == 0 else f"DL×{workers}"


def _fmt(x: float | None, spec: str = "{:.2f}") -> str:
    """``spec.format(x)``, or an en dash for a figure that was not measured."""
    return "–" if x is None else spec.format(x)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; ``|`` inside a cell is escaped."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except Exception:
        return "not installed"
    return str(getattr(mod, "__version__", "installed"))


def machine() -> dict[str, Any]:
    """CPU model, core counts, memory (GiB), OS, Python and the versions of every package a benchmark touches."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    versions = {m: _version(m) for m in ("numpy", "torch", "torchaudio", "torchcodec", "soundfile", "soxr",
                                         "webdataset", "msgpack", "litdata", "streaming", "matplotlib", "psutil")}
    try:
        import soundfile

        versions["libsndfile"] = soundfile.__libsndfile_version__
    except Exception:
        pass
    try:
        import shardkit

        versions["shardkit"] = shardkit.__version__
    except Exception:
        pass
    return {
        "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(), "cpus_usable": usable,
        "mem_total_gib": _mem_total_gib(), "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0], "versions": versions,
    }
