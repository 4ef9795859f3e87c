"""The whole-member path of a batch, for a codec that is not a :class:`~shardkit.encode.FrameCodec`: the
bytes of a crop are not a byte range of the member (a compressed member), so each row's whole data member
is read into a scratch buffer, one member per row, and :meth:`~shardkit.encode.Codec.crop` decodes the
row's frames out of it into the batch. A frame codec's crops go straight into the rows instead
(:meth:`~shardkit.dataset.assemble.reader.BatchReader.read_rows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from shardkit.errors import FormatError, ShardReadError
from shardkit.read.shardset import ShardSet

if TYPE_CHECKING:
    from shardkit.dataset.assemble.reader import Read


class WholeMembers:
    """The scratch buffer whole members are read into (reused from batch to batch, never pickled) and
    their decoding into the batch rows."""

    def __init__(self) -> None:
        self._buf: np.ndarray | None = None

    def buffer(self, rows: int, reads: Sequence[Read]) -> tuple[memoryview, int]:
        """(bytes, row width): ``rows`` rows of the largest of the ``reads``' members each."""
        row_bytes = max((r.nbytes for r in reads), default=0)
        n = rows * row_bytes
        if self._buf is None or self._buf.size < n:
            self._buf = np.empty(n, dtype=np.uint8)
        return memoryview(self._buf[:n]), row_bytes

    def decode(self, ss: ShardSet, reads: Sequence[Read], flat: memoryview, row_bytes: int, buf: np.ndarray,
               samples: np.ndarray, offsets: np.ndarray, nread: np.ndarray, skip_rows: Sequence[int]
               ) -> list[tuple[int, ShardReadError]]:
        """Decode each read whole member (row ``r.row`` of ``flat``, ``row_bytes`` apart) and put frames
        ``[offsets, offsets + nread)`` into its row of ``buf`` (B, T·lanes); the rows whose member does
        not decode to the frames its index records, as ``(row, error)`` sorted by row."""
        codec, skip, errors = ss.codec, set(skip_rows), []
        for r in reads:
            if r.row in skip:
                continue
            i, start, n = int(samples[r.row]), int(offsets[r.row]), int(nread[r.row])
            member = flat[r.row * row_bytes:][:r.nbytes]
            try:
                frames = codec.crop(member, start, n)
                if frames.shape != (n, codec.lanes):
                    raise FormatError(f"frames [{start}, {start + n}) decode to shape {frames.shape}, not "
                                      f"({n}, {codec.lanes}); the index says {int(ss.frames[i])} frames")
            except FormatError as exc:
                errors.append((r.row, ss.read_error(i, f"its {codec.codec_id} data member cannot be decoded "
                                                       f"({exc})")))
                continue
            buf[r.row, :n * codec.lanes] = frames.reshape(-1)
        errors.sort(key=lambda e: e[0])
        return errors

    def __getstate__(self) -> dict[str, Any]:
        return {"_buf": None}
