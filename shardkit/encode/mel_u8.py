"""The ``mel-u8`` codec (format v2 §3.3): a log-mel spectrogram quantised to uint8, stored as ``.npy``.

Quantisation scheme ``minmax`` (per stored sample): with ``lo``/``hi`` the smallest and largest dB
value of the sample's float32 log-mel ``S`` (``(n_mels, frames)``),

    q = round((S - lo) · 255 / (hi - lo))          uint8, 0..255
    S' = lo + q · (hi - lo) / 255                  (dequantised, on the device)

so ``|S' - S| ≤ (hi - lo) / 510`` dB (half a step) up to float32 rounding. With the front end's
``top_db`` floor, ``hi - lo ≤ top_db``: 80 dB gives a bound of 0.157 dB. ``lo`` and ``hi`` are float32
values stored in the sample's metadata and in the shard index (columns ``q_lo``, ``q_hi``) so a reader
dequantises a batch without opening the metadata. A constant spectrogram (``hi == lo``) stores zeros.

The ``.npy`` member is NPY format 1.0 with a 128-byte header, dtype ``|u1``, ``fortran_order: True``
and shape ``(n_mels, frames)``: numpy and webdataset load it as ``(n_mels, frames)``, and its bytes run
frame by frame, so a crop of frames ``[a, b)`` is one contiguous byte range ``[a·n_mels, b·n_mels)``
after the header.

This module needs numpy only; computing the log-mel itself is :class:`shardkit.device.LogMel`'s job.
"""

from __future__ import annotations

import ast
from typing import Any

import numpy as np

from shardkit.errors import FormatError
from shardkit.format import NPY_HEADER_BYTES

CODEC_ID = "mel-u8"
SCHEME = "minmax"
LEVELS = 255
_MAGIC = b"\x93NUMPY\x01\x00"


def codec_config(sample_rate: int, mel: dict[str, Any]) -> dict[str, Any]:
    """The self-describing codec config written into every shard index (and the manifest's ``audio``).

    ``mel`` is the front end's :meth:`MelConfig.to_dict` (``normalize`` is always ``"none"``: the
    stored values are dB; normalisation happens on the device after dequantising).
    """
    return {
        "codec_id": CODEC_ID,
        "sample_rate": int(sample_rate),
        "channels": 1,
        "sample_width": 1,
        "header_bytes": NPY_HEADER_BYTES,
        "n_mels": int(mel["n_mels"]),
        "mel": dict(mel),
        "quantization": {"scheme": SCHEME, "levels": LEVELS, "unit": "dB",
                         "max_error": "(q_hi - q_lo) / 510 dB"},
    }


def quantize(db: np.ndarray) -> tuple[np.ndarray, float, float]:
    """float log-mel ``(n_mels, frames)`` in dB → ``(uint8 (n_mels, frames), lo, hi)`` (float32 values)."""
    x = np.asarray(db, dtype=np.float32)
    if x.ndim != 2 or x.size == 0:
        raise FormatError(f"mel-u8 quantises a non-empty (n_mels, frames) array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise FormatError("mel-u8 cannot quantise a spectrogram with NaN or infinite values")
    lo, hi = np.float32(x.min()), np.float32(x.max())
    span = np.float32(hi - lo)
    if span <= 0:
        return np.zeros(x.shape, dtype=np.uint8), float(lo), float(hi)
    q = np.rint((x - lo) * (np.float32(LEVELS) / span))
    return np.clip(q, 0, LEVELS).astype(np.uint8), float(lo), float(hi)


def dequantize(q: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The inverse of :func:`quantize`: float32 dB of the same shape."""
    step = np.float32((np.float32(hi) - np.float32(lo)) / np.float32(LEVELS))
    return np.float32(lo) + q.astype(np.float32) * step


def max_error_db(lo: float, hi: float) -> float:
    """The scheme's bound on ``|dequantize(quantize(S)) - S|`` in dB for a sample with ``lo``/``hi``."""
    return (float(hi) - float(lo)) / (2 * LEVELS)


def npy_header(n_mels: int, frames: int) -> bytes:
    """The 128-byte NPY 1.0 header of a ``(n_mels, frames)`` Fortran-ordered uint8 array."""
    text = f"{{'descr': '|u1', 'fortran_order': True, 'shape': ({n_mels}, {frames}), }}"
    room = NPY_HEADER_BYTES - len(_MAGIC) - 2
    if len(text) + 1 > room:
        raise FormatError(f"a mel-u8 array of shape ({n_mels}, {frames}) does not fit a 128-byte NPY header")
    text = text.ljust(room - 1) + "\n"
    return _MAGIC + room.to_bytes(2, "little") + text.encode("latin1")


def encode(q: np.ndarray) -> bytes:
    """uint8 ``(n_mels, frames)`` → the ``.npy`` member's bytes (header + frame-major payload)."""
    if q.dtype != np.uint8 or q.ndim != 2:
        raise TypeError(f"mel-u8 encodes a uint8 (n_mels, frames) array, got {q.dtype} {q.shape}")
    n_mels, frames = q.shape
    return npy_header(n_mels, frames) + np.ascontiguousarray(q.T).tobytes()


def parse_header(header: bytes) -> tuple[int, int]:
    """Check a mel-u8 NPY header; return ``(n_mels, frames)``."""
    if len(header) < NPY_HEADER_BYTES or header[:8] != _MAGIC:
        raise FormatError("not an NPY 1.0 member with a 128-byte header")
    n = int.from_bytes(header[8:10], "little")
    if 10 + n != NPY_HEADER_BYTES:
        raise FormatError(f"NPY header is {10 + n} bytes, mel-u8 writes {NPY_HEADER_BYTES}")
    try:
        d = ast.literal_eval(header[10:NPY_HEADER_BYTES].decode("latin1").strip())
        shape = tuple(int(v) for v in d["shape"])
        ok = d["descr"] == "|u1" and d["fortran_order"] is True and len(shape) == 2
    except (ValueError, SyntaxError, KeyError, TypeError) as exc:
        raise FormatError(f"NPY header is not readable ({exc})") from exc
    if not ok:
        raise FormatError(f"NPY header {d} is not a Fortran-ordered uint8 (n_mels, frames) array")
    return shape[0], shape[1]


def decode(data: bytes | memoryview) -> np.ndarray:
    """``.npy`` member bytes → uint8 ``(n_mels, frames)`` (a zero-copy, Fortran-ordered view)."""
    n_mels, frames = parse_header(bytes(data[:NPY_HEADER_BYTES]))
    flat = np.frombuffer(data, dtype=np.uint8, count=n_mels * frames, offset=NPY_HEADER_BYTES)
    return flat.reshape(frames, n_mels).T


__all__ = ["CODEC_ID", "LEVELS", "SCHEME", "codec_config", "decode", "dequantize", "encode", "max_error_db",
           "npy_header", "parse_header", "quantize"]
