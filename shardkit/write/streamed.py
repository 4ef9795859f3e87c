"""Samples of one long source made and handed on one at a time, so that a pack holds a few pieces of
a recording rather than all of it (see :func:`shardkit.ingest.decode.open_source`).

:class:`LazySamples` makes each sample when it is asked for, in order; :class:`SpillReader` reads the
samples a worker wrote into a spill file back one at a time. Both are sequences with a length, so the
pack's loop (``len(result)``, ``result[n]`` for rising ``n``) uses them like the lists of short sources.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, overload

from shardkit.errors import PackError
from shardkit.ingest.segment import Piece
from shardkit.write.shards import EncodedSample

#: a spill above this many bytes is read back one sample at a time instead of in one read
SPILL_READ_WHOLE_BYTES = 64 << 20


class LazySamples(Sequence[EncodedSample]):
    """``make(n, piece)`` for each piece, made when item ``n`` is asked for; items must be asked for
    in rising order (a skipped one is never made; the latest one may be asked for again), since
    ``make`` reads its source forward."""

    def __init__(self, pieces: list[Piece], make: Callable[[int, Piece], EncodedSample]) -> None:
        self.pieces, self.make = pieces, make
        self._last = -1
        self._sample: EncodedSample | None = None  #: item ``_last``, kept for a second look

    def __len__(self) -> int:
        return len(self.pieces)

    @overload
    def __getitem__(self, n: int) -> EncodedSample: ...

    @overload
    def __getitem__(self, n: slice) -> Sequence[EncodedSample]: ...

    def __getitem__(self, n: Any) -> Any:
        if isinstance(n, slice) or not 0 <= n < len(self.pieces):
            raise IndexError(n)
        if n == self._last:
            return self._sample
        if n < self._last:
            raise ValueError(f"sample {n} was made already; LazySamples reads its source forward only")
        self._sample = self.make(n, self.pieces[n])
        self._last = n
        return self._sample


class SpillReader(Sequence[EncodedSample]):
    """The samples of a spill file (WAV bytes one after another, ``sizes`` each), read back one at a
    time (the latest one kept for a second look). The file is unlinked as soon as it is open (its
    space is freed when the reader is closed or collected), so a crash leaves nothing behind."""

    def __init__(self, path: str, samples: list[EncodedSample], sizes: list[int]) -> None:
        self.path, self.samples, self.sizes = path, samples, sizes
        self.offsets = [0]
        for size in sizes:
            self.offsets.append(self.offsets[-1] + size)
        self._last, self._sample = -1, None
        self._fd: int | None = os.open(path, os.O_RDONLY)
        os.unlink(path)

    def __len__(self) -> int:
        return len(self.samples)

    @overload
    def __getitem__(self, n: int) -> EncodedSample: ...

    @overload
    def __getitem__(self, n: slice) -> Sequence[EncodedSample]: ...

    def __getitem__(self, n: Any) -> Any:
        if isinstance(n, slice) or not 0 <= n < len(self.samples):
            raise IndexError(n)
        if n == self._last:
            return self._sample
        if self._fd is None:
            raise PackError(f"{self.path}: the spill file was closed already")
        size, offset = self.sizes[n], self.offsets[n]
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise PackError(f"{self.path}: a worker's spill file ended early (disk full?)")
        if n == len(self.samples) - 1:
            self.close()
        self._last, self._sample = n, replace(self.samples[n], wav=data)
        return self._sample

    def close(self) -> None:
        """Close the file (freeing its space)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()
