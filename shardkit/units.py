"""Human-readable sizes and durations, validated before any work starts."""

from __future__ import annotations

import re

from shardkit.errors import UsageError

_UNITS = {
    "": 1, "B": 1,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")


def parse_size(value: int | float | str, *, name: str = "size") -> int:
    """Parse ``"1GB"``, ``"512MiB"``, ``"100kb"`` or a plain number of bytes into bytes.

    KB/MB/GB/TB are decimal (10^3...), KiB/MiB/GiB/TiB binary (2^10...). Raises
    :class:`UsageError` naming ``name`` for anything else or for a size that is not positive.
    """
    if isinstance(value, bool):
        raise UsageError(f"{name}: expected a size like '1GB', got {value!r}")
    if isinstance(value, (int, float)):
        n = int(value)
    else:
        m = _SIZE_RE.match(str(value))
        unit = m.group(2).upper() if m else None
        if not m or unit not in _UNITS:
            raise UsageError(
                f"{name}: cannot read {value!r} as a size; write e.g. '1GB', '512MiB' or '100000000'"
            )
        n = int(float(m.group(1)) * _UNITS[unit])
    if n <= 0:
        raise UsageError(f"{name}: must be positive, got {value!r}")
    return n


def format_size(n: int | float) -> str:
    """Bytes as a short decimal string: ``1.23 GB``."""
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """Seconds as ``1h02m03s`` / ``2m03s`` / ``4.5s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"
