"""Read-time integrity for :class:`~shardkit.dataset.ShardDataset` (``verify_crc=True``): each data
member read is checked against the CRC-32 its index records (format §4, column ``wav_crc32``).

A CRC-32 covers a whole member (codec header + payload), so:

- a codec whose members are read whole (not a :class:`~shardkit.encode.FrameCodec`: a compressed one)
  has every member it reads checked every time, over the bytes read;
- an item that reads its member whole (segments mode; a recording no longer than the crop) is checked
  every time it is read: the CRC of the header (read alongside, ``header_bytes``) continued over the
  payload bytes already in the batch row — no second read of the payload;
- an item that reads part of a member (a random crop of a longer recording) has the whole member read
  and checked once per process (the first time any crop of it is read; later crops of a member that
  passed are not checked again, a member that failed fails every read).

A mismatch is a :class:`~shardkit.errors.ShardReadError` naming the shard and sample, which follows
``on_error`` like any read error. The cost is measured by ``python -m benchmarks.crc`` (docs/reading.md).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from shardkit.encode import meta as meta_codec
from shardkit.encode.base import FrameCodec
from shardkit.errors import FormatError, ShardReadError
from shardkit.read.shardset import ShardSet


class CrcCheck:
    """Checks the members of one batch (see the module docstring). ``state`` per sample of ``ss``:
    0 not checked whole yet, 1 passed, 2 failed (used for partial reads only). Counts ``crc_checked``
    and ``crc_failed`` in ``stats`` (the reader's)."""

    def __init__(self, ss: ShardSet, stats: dict[str, int]) -> None:
        self.ss, self.stats = ss, stats
        self.state = np.zeros(len(ss), np.uint8)
        stats.update(crc_checked=0, crc_failed=0)

    def check(self, reads: Sequence[Any], samples: np.ndarray, offsets: np.ndarray, nread: np.ndarray,
              flat: memoryview, row_bytes: int, skip_rows: Sequence[int] = ()) -> list[tuple[int, ShardReadError]]:
        """The rows whose member fails its CRC, as ``(row, error)`` sorted by row. ``reads``: the
        batch's :class:`~shardkit.dataset.assemble.reader.Read` list (row, shard, offset, nbytes), whose bytes are
        in ``flat[row × row_bytes:][:nbytes]``; ``samples``/``offsets``/``nread`` int64 (B,): each row's
        sample, first frame and frames read; ``skip_rows``: rows whose read failed already."""
        ss, skip = self.ss, set(skip_rows)
        frames = ss.frames[samples]
        # a frame codec's crop that is the whole payload, or any read of a codec that reads members whole
        whole = ((offsets == 0) & (nread == frames)) | (not isinstance(ss.codec, FrameCodec))
        errors: list[tuple[int, ShardReadError]] = []
        headers = self._headers([r for r in reads if r.row not in skip and whole[r.row]], samples)
        for r in reads:
            if r.row in skip:
                continue
            i = int(samples[r.row])
            if whole[r.row]:
                header = headers[r.row]
                got = None if header is None else zlib.crc32(flat[r.row * row_bytes:][:r.nbytes], zlib.crc32(header))
                ok = got == int(ss.wav_crc32[i])
            else:
                ok = self._check_whole(i)
            self.stats["crc_checked"] += 1
            if not ok:
                self.stats["crc_failed"] += 1
                errors.append((r.row, self.error(i)))
        errors.sort(key=lambda e: e[0])
        return errors

    def _headers(self, reads: Sequence[Any], samples: np.ndarray) -> dict[int, bytes | None]:
        """The codec header of each read's member (None where it cannot be read), by row: none (empty)
        for a codec whose reads are whole members already."""
        ss, codec = self.ss, self.ss.codec
        if not isinstance(codec, FrameCodec):
            return {r.row: b"" for r in reads}
        n = codec.header_bytes
        out: dict[int, bytes | None] = {}
        by_shard: dict[int, list[Any]] = {}
        for r in reads:
            by_shard.setdefault(r.shard, []).append(r)
        for shard, rows in by_shard.items():
            rows.sort(key=lambda r: int(ss.wav_offset[samples[r.row]]))
            bufs = [bytearray(n) for _ in rows]
            ranges = [(int(ss.wav_offset[samples[r.row]]), n, memoryview(b)) for r, b in zip(rows, bufs)]
            failed = {k for k, _ in ss.storage.read_into(ss.shard_names[shard], ranges)}
            for k, (r, b) in enumerate(zip(rows, bufs)):
                out[r.row] = None if k in failed else bytes(b)
        return out

    def _check_whole(self, i: int) -> bool:
        """Read sample ``i``'s member whole once (per process) and compare its CRC-32."""
        if self.state[i] == 0:
            try:
                data = self.ss.read_data_member(i)
                self.state[i] = 1 if zlib.crc32(data) == int(self.ss.wav_crc32[i]) else 2
            except ShardReadError:
                self.state[i] = 2
        return bool(self.state[i] == 1)

    def read_meta(self, i: int) -> dict[str, Any]:
        """Sample ``i``'s ``.mp`` map, its member checked against the index's ``meta_crc32`` first;
        :class:`ShardReadError` naming shard and sample when it cannot be read, fails or is no map."""
        data = self.ss._pread(i, int(self.ss.meta_offset[i]), int(self.ss.meta_size[i]))
        self.stats["crc_checked"] += 1
        if zlib.crc32(data) != int(self.ss.meta_crc32[i]):
            self.stats["crc_failed"] += 1
            raise self.error(i, "its .mp member", int(self.ss.meta_crc32[i]))
        try:
            return meta_codec.decode(bytes(data))
        except FormatError as exc:
            raise self.ss.read_error(i, str(exc)) from None

    def error(self, i: int, what: str = "its bytes", crc: int | None = None) -> ShardReadError:
        """The error for sample ``i`` whose member does not match its index's CRC-32."""
        crc = int(self.ss.wav_crc32[i]) if crc is None else crc
        return self.ss.read_error(i, f"{what} do not match the CRC-32 0x{crc:08x} recorded in the index "
                                     "(verify_crc=True): the shard was damaged after it was written")
