"""The per-sample ``KEY.mp`` member: a msgpack map (format §3.2)."""

from __future__ import annotations

from typing import Any

import msgpack

from shardkit.errors import FormatError


def encode(meta: dict[str, Any]) -> bytes:
    """Metadata map → msgpack bytes (keys sorted, so equal maps give equal bytes)."""
    return msgpack.packb(_sorted(meta), use_bin_type=True)


def decode(data: bytes | memoryview) -> dict[str, Any]:
    """msgpack bytes → metadata map."""
    try:
        doc = msgpack.unpackb(bytes(data), raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:  # TypeError: a list or map as a key
        raise FormatError(f"sample metadata is not valid msgpack ({exc})") from exc
    if not isinstance(doc, dict):
        raise FormatError("sample metadata is not a msgpack map")
    return doc


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_sorted(v) for v in value]
    return value
