"""The windows :class:`~shardkit.storage.object.ObjectStorage` fetches: which members share a GET
(:func:`plan_windows`), the bounded cache of fetched windows (:class:`WindowCache`) and serving a range
out of a CRC-checked window (:func:`serve`)."""

from __future__ import annotations

import bisect
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from shardkit.storage.base import Extent, ShortRead
from shardkit.storage.local import coalesce

__all__ = ["GAP", "WINDOW_MAX", "CorruptMember", "Failed", "TagMismatch", "Window", "WindowCache", "covers",
           "fill_spans", "get_if_match", "plain_spans", "plan_windows", "serve", "stream_if_match"]

MB = 1 << 20
#: members at most this far apart share a GET
GAP = 1 * MB
#: a window (one GET) grows to at most this many bytes
WINDOW_MAX = 16 * MB
#: pieces of a streamed object that wait for ``write`` while the next ones arrive (:func:`stream_if_match`)
STREAM_DEPTH = 2

class CorruptMember(OSError):
    """A fetched member's bytes fail the CRC-32 of the index: not served."""

    def __init__(self, where: str, offset: int, length: int) -> None:
        super().__init__(f"{where}: member of {length} bytes at offset {offset} fails its CRC-32 "
                         "(the object changed since it was indexed, or the transfer was corrupted)")


class Window(NamedTuple):
    """Bytes ``[start, end)`` of an object, fetched; ``bad``: the (start, end) of members that failed
    their CRC-32."""

    start: int
    end: int
    data: Any  # a buffer (obstore Bytes)
    bad: tuple[tuple[int, int], ...]


def plan_windows(extents: Sequence[Extent], *, gap: int = GAP, max_bytes: int = WINDOW_MAX) -> list[list[Extent]]:
    """Group members sorted by offset into windows: gaps ≤ ``gap``, span ≤ ``max_bytes`` (unless one
    member alone is larger)."""
    out: list[list[Extent]] = []
    for e in extents:
        if out:
            last, first = out[-1][-1], out[-1][0]
            end = last.offset + last.length
            if end <= e.offset <= end + gap and e.offset + e.length - first.offset <= max_bytes:
                out[-1].append(e)
                continue
        out.append([e])
    return out


class WindowCache:
    """Fetched windows, at most ``limit`` bytes (not thread-safe: the storage's lock guards it).

    A window fetched or found by :meth:`ObjectStorage.prefetch` is *pending* until every hinted member in
    it has been served once; eviction takes the oldest window that is not pending, and only when there is
    none the oldest pending one. Read-ahead keeps two shuffle windows in flight and the default cache
    holds two: evicting by last use (LRU) or by age alone dropped windows fetched for the next shuffle
    window before their items were read, and each such item was then fetched again on its own (against
    moto on loopback: 67–103 extra GETs in 8 s of reading, up to 95 % of all GETs).
    """

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self.windows: OrderedDict[tuple[str, int, int], Window] = OrderedDict()
        #: per window: the starts of its hinted members not served yet (sorted list, remaining set)
        self.pending: dict[tuple[str, int, int], tuple[list[int], set[int]]] = {}

    def find(self, name: str, offset: int, length: int) -> Window | None:
        for key, w in reversed(self.windows.items()):
            if key[0] == name and w.start <= offset and offset + length <= w.end:
                return w
        return None

    def hint(self, name: str, w: Window, starts: Sequence[int]) -> None:
        """Mark the members at ``starts`` in cached window ``w`` as to be read (again)."""
        key = (name, w.start, w.end)
        if key in self.windows:
            self.windows.move_to_end(key)
            left = set(starts) | self.pending.get(key, ((), set()))[1]
            self.pending[key] = (sorted(left), left)

    def served(self, name: str, w: Window, offset: int) -> None:
        """The member of ``w`` holding byte ``offset`` has been served."""
        entry = self.pending.get((name, w.start, w.end))
        if entry is not None:
            starts, left = entry
            k = bisect.bisect_right(starts, offset) - 1
            if k >= 0:
                left.discard(starts[k])

    def put(self, name: str, w: Window, starts: Sequence[int] = ()) -> None:
        size = w.end - w.start
        if size > self.limit:
            return
        key = (name, w.start, w.end)
        if key in self.windows:
            return
        while self.windows and self.used + size > self.limit:
            victim = next((k for k in self.windows if not self.pending.get(k, ((), ()))[1]), next(iter(self.windows)))
            old = self.windows.pop(victim)
            self.pending.pop(victim, None)
            self.used -= old.end - old.start
        self.windows[key] = w
        self.used += size
        if starts:
            self.pending[key] = (sorted(starts), set(starts))

    def clear(self) -> None:
        self.windows.clear()
        self.pending.clear()
        self.used = 0


def serve(w: Window, offset: int, length: int, dest: memoryview, where: str) -> OSError | None:
    """Copy ``[offset, offset+length)`` out of window ``w`` into ``dest``, unless a bad member overlaps."""
    for s, e in w.bad:
        if s < offset + length and offset < e:
            return CorruptMember(where, s, e - s)
    view = dest if len(dest) == length else dest[:length]
    view[:] = memoryview(w.data)[offset - w.start:offset - w.start + length]
    return None


class Failed(NamedTuple):
    """A window whose GET failed: ``err`` for every range inside it."""

    start: int
    end: int
    err: OSError


def covers(w: Any, start: int, end: int) -> bool:
    return w.start <= start and end <= w.end


class TagMismatch(Exception):
    """The object is no longer the one whose ETag was recorded (HTTP 412, or the answer names another ETag)."""


def get_if_match(store: Any, name: str, start: int, end: int, tag: str | None) -> tuple[Any, str | None]:
    """``(bytes [start, end) of name, the answer's ETag)``: one ranged GET with ``If-Match: tag`` (when known).
    Raises :class:`TagMismatch` when the server refuses the condition or answers with another ETag (a server
    that ignores ``If-Match``); other obstore errors as they come."""
    options: dict[str, Any] = {"range": (start, end)}
    got, now = _get_checked(store, name, options, tag)
    return got.bytes(), now


def _get_checked(store: Any, name: str, options: dict[str, Any], tag: str | None) -> tuple[Any, str | None]:
    """obstore's GET of ``name`` with ``If-Match: tag`` added to ``options`` (when known); the answer and its
    ETag. :class:`TagMismatch` when the server refuses the condition or names another ETag."""
    import obstore

    if tag:
        options = {**options, "if_match": tag}
    try:
        got = obstore.get(store, name, options=options or None)
    except Exception as exc:
        if type(exc).__name__ == "PreconditionError":
            raise TagMismatch(str(exc)) from None
        raise
    now = got.meta.get("e_tag")
    if tag and now and now != tag:
        raise TagMismatch(f"ETag {now}, not {tag}")
    return got, now


def plain_spans(ranges: Sequence[Any], ks: Sequence[int]) -> list[tuple[int, int]]:
    """``(start, end)`` GETs covering ranges ``ks`` of ``ranges`` ((offset, length, dest)): neighbours at most
    :data:`GAP` apart share one."""
    order = sorted(ks, key=lambda k: ranges[k][0])
    merged = coalesce([Extent(int(ranges[k][0]), int(ranges[k][1]), 0) for k in order], gap=GAP, chunk=1 << 62)
    return [(a, a + n) for a, n in merged]


def fill_spans(ranges: Sequence[Any], ks: Sequence[int], spans: Sequence[tuple[int, int]], got: Sequence[Any],
               where: str) -> dict[int, OSError]:
    """Copy ranges ``ks`` out of the fetched ``spans`` (``got``: bytes, or the ``OSError`` of a failed GET);
    returns the failed ranges (that error, or :class:`ShortRead`)."""
    errors: dict[int, OSError] = {}
    starts = [a for a, _ in spans]
    for k in ks:
        offset, length, dest = ranges[k]
        j = bisect.bisect_right(starts, offset) - 1
        data, a = got[j], spans[j][0]
        if isinstance(data, OSError):
            errors[k] = data
        elif len(data) < offset - a + length:
            errors[k] = ShortRead(where, max(0, len(data) - (offset - a)), length, offset)
        else:
            (dest if len(dest) == length else dest[:length])[:] = memoryview(data)[offset - a:offset - a + length]
    return errors


def stream_if_match(store: Any, name: str, tag: str | None, write: Callable[[Any], None]) -> int:
    """GET the whole object ``name`` on the condition ``If-Match: tag`` (when known), handing its body to
    ``write`` in pieces of about 8 MB, in order, from a thread of their own while the next pieces arrive
    (memory: at most ``STREAM_DEPTH`` + 2 pieces); returns the bytes streamed. :class:`TagMismatch` as
    :func:`get_if_match`; an error of ``write`` is raised here."""
    got, _ = _get_checked(store, name, {}, tag)
    total = 0
    with _handed_on(write) as put:
        for chunk in got.stream(min_chunk_size=8 * MB):
            put(chunk)
            total += len(chunk)
    return total


@contextmanager
def _handed_on(write: Callable[[Any], None]) -> Iterator[Callable[[Any], None]]:
    """``put(piece)``: ``write(piece)`` in one other thread, in order, at most :data:`STREAM_DEPTH` waiting —
    so a slow ``write`` (sha256, the disk) no longer stalls the transfer. The first error of ``write`` is
    raised by the next ``put`` or on the way out; the pieces after it are dropped."""
    pieces: queue.Queue[Any] = queue.Queue(STREAM_DEPTH)
    failed: list[BaseException] = []

    def drain() -> None:
        while (piece := pieces.get()) is not None:
            if not failed:
                try:
                    write(piece)
                except BaseException as exc:  # raised in the streaming thread
                    failed.append(exc)

    worker = threading.Thread(target=drain, name="shardkit-stream-write", daemon=True)
    worker.start()

    def put(piece: Any) -> None:
        if failed:
            raise failed[0]
        pieces.put(piece)

    try:
        yield put
    finally:
        pieces.put(None)
        worker.join()
    if failed:
        raise failed[0]
