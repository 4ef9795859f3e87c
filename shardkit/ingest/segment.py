"""Cut a decoded recording into the samples that get stored (pure functions, frames in, frames out).

- segments mode: fixed windows of ``segment`` frames every ``hop`` frames; the partial window that
  would start after the last full one follows the ``tail`` policy: ``"pad"`` (zero-pad it to a full
  window), ``"keep"`` (store it short) or ``"drop"``. A recording shorter than one window is that
  partial window.
- recordings mode: the whole recording, or, when longer than ``max_frames``, ``ceil(n / max)``
  chunks of (nearly) equal length, so no tiny tail chunk appears.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Tail = Literal["pad", "keep", "drop"]


class Piece(NamedTuple):
    """One stored sample: frames ``[start, start + length)`` of the recording, then ``pad`` zeros."""

    start: int
    length: int
    pad: int


def plan_segments(frames: int, segment: int, hop: int, tail: Tail = "pad") -> list[Piece]:
    """Windows of ``segment`` frames every ``hop`` frames over a recording of ``frames`` frames."""
    if segment <= 0 or hop <= 0:
        raise ValueError("segment and hop must be positive")
    if tail not in ("pad", "keep", "drop"):
        raise ValueError(f"tail must be pad, keep or drop, got {tail!r}")
    pieces = []
    start = 0
    while start + segment <= frames:
        pieces.append(Piece(start, segment, 0))
        start += hop
    if start < frames and tail != "drop":
        rest = frames - start
        pieces.append(Piece(start, rest, segment - rest if tail == "pad" else 0))
    return pieces


def plan_chunks(frames: int, max_frames: int | None) -> list[Piece]:
    """The whole recording, or equal chunks of at most ``max_frames`` frames."""
    if frames <= 0:
        return []
    if not max_frames or frames <= max_frames:
        return [Piece(0, frames, 0)]
    n = -(-frames // max_frames)
    bounds = [i * frames // n for i in range(n + 1)]
    return [Piece(a, b - a, 0) for a, b in zip(bounds[:-1], bounds[1:])]
