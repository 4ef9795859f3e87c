"""A shard set in a local folder: :class:`LocalStorage`, the :class:`~shardkit.storage.base.Storage` of a path.

A shard set may come from anyone (docs/reliability.md): :class:`LocalStorage` reads only regular files
inside its folder (no FIFO, device or folder; a symlink only when it resolves inside the set), caps
:meth:`~LocalStorage.read_bytes` at :data:`MAX_OBJECT_BYTES` before reading, and notices a shard
replaced or rewritten since the set was opened (:class:`ShardChanged`).
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import os
import queue
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shardkit.errors import UnsafeFileError, UsageError
from shardkit.storage import base
from shardkit.storage.base import (
    ByteRange,
    Capabilities,
    Extent,
    OpenFailed,
    RangeError,
    ShardChanged,
    ShortRead,
    Storage,
)
from shardkit.storage.location import Location
from shardkit.storage.safe_open import Identity, identity, open_regular, stat_regular

__all__ = ["MAX_OPEN_SHARDS", "READAHEAD_MODES", "LocalStorage", "coalesce", "page_cache_share"]

#: Shard files a :class:`LocalStorage` keeps open per process; the least recently used idle one is
#: closed beyond this.
MAX_OPEN_SHARDS = 128

_HAS_PREADV = hasattr(os, "preadv")
_HAS_FADVISE = hasattr(os, "posix_fadvise")

#: :class:`LocalStorage` read-ahead modes: ``"auto"`` (the default: ``"fadvise"`` for the ranges whose pages
#: are not all in the page cache already, asked with ``mincore``; nothing for a warm range),
#: ``"fadvise"`` (``POSIX_FADV_WILLNEED`` on coalesced ranges: the kernel reads them into the page cache),
#: ``"read"`` (a thread reads them sequentially in :data:`READAHEAD_CHUNK` pieces into one reused buffer,
#: which fills the page cache), ``"off"``
READAHEAD_MODES = ("auto", "fadvise", "read", "off")
#: members closer than this are read ahead as one range (the tar headers and ``.mp`` members between)
READAHEAD_GAP = 1 << 20
#: pages :meth:`LocalStorage.resident_share` samples over a set (the page cache is filled and emptied in
#: runs of pages, so a few hundred spread evenly tell a cached set from one that is not)
RESIDENT_PROBES = 256
#: largest single read-ahead request (and the ``"read"`` mode's buffer: its whole memory)
READAHEAD_CHUNK = 8 << 20


class _Handle:
    """An open descriptor, the file's size when it was opened, and the number of reads using it now."""

    __slots__ = ("fd", "orphan", "size", "users")

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size, self.users, self.orphan = fd, size, 0, False




class LocalStorage(Storage):
    """A shard set in a local folder: ``os.preadv`` on descriptors kept open per process.

    The descriptor table is thread-safe (a lock around it; the reads run outside the lock) and
    LRU-capped at ``max_open`` (default :data:`MAX_OPEN_SHARDS`); a descriptor in use by a read is
    never closed under it. A process forked from one with open descriptors starts a table of its own.
    Pickles to its root, cap and the identities of the shards it has seen.

    Every object is opened without following a final symlink (one that resolves inside the set is
    followed; one leading out is refused), without blocking (a FIFO never hangs), and must be a
    regular file (:class:`~shardkit.errors.UnsafeFileError` otherwise). The first :meth:`size` or open
    of a name records its identity (device, inode, size, mtime); a later open of a different file, or
    a held descriptor whose size changed, fails with :class:`ShardChanged`.
    """

    def __init__(self, root: str | os.PathLike[str], *, max_open: int | None = None,
                 readahead: str = "auto") -> None:
        if readahead not in READAHEAD_MODES:
            raise ValueError(f"readahead must be one of {READAHEAD_MODES}, got {readahead!r}")
        self.root = Path(root)
        self.max_open = max_open
        self.readahead = readahead
        self._ids: dict[str, Identity] = {}
        self._reset()

    @classmethod
    def from_location(cls, location: Location, storage_options: Mapping[str, Any] | None = None) -> LocalStorage:
        if storage_options:
            raise UsageError(f"{location}: storage_options apply to object-store URLs (s3://, gs://, az://, "
                             "http(s)://), not to a local folder")
        return cls(location.path)

    @property
    def capabilities(self) -> Capabilities:
        """Local files; :meth:`prefetch` does something unless ``readahead`` is ``"off"``."""
        return Capabilities(reads_ahead=self.readahead != "off", local_files=True)

    def set_readahead(self, mode: str) -> None:
        """Read ahead in ``mode`` from now on (:data:`READAHEAD_MODES`)."""
        if mode not in READAHEAD_MODES:
            raise ValueError(f"readahead must be one of {READAHEAD_MODES}, got {mode!r}")
        self.readahead = mode

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._fds: OrderedDict[str, _Handle] = OrderedDict()
        self._pid = os.getpid()
        self._jobs: queue.SimpleQueue[tuple[int, str, list[tuple[int, int]]] | None] | None = None
        self._ahead_thread: threading.Thread | None = None
        self._ahead_gen = 0  # bumped by close(): queued jobs of an older generation are dropped

    def _check_pid(self) -> None:
        """In a process forked from the one that filled the table: close the inherited descriptors and
        start an empty table with a new lock (the inherited one may be held by a thread that is gone)."""
        if self._pid == os.getpid():
            return
        with _fork_lock():
            if self._pid != os.getpid():
                inherited = self._fds
                self._reset()
                for handle in inherited.values():
                    _close(handle.fd)

    # -- the interface ---------------------------------------------------------------------------

    def path(self, name: str) -> Path:
        """The local path of object ``name``."""
        return self.root / name

    def local_path(self, name: str) -> Path:
        return self.path(name)

    def describe(self, name: str) -> str:
        return str(self.root / name)

    def prefetch(self, name: str, extents: Sequence[Extent]) -> None:
        """Queue the extents' coalesced ranges (:func:`coalesce`) for this process's read-ahead thread and
        return: it asks the kernel to read them (``"fadvise"``) or reads them in order (``"read"``), so
        the page cache holds them when :meth:`read_into` comes. The thread starts on first use (also
        in a forked child); it holds no data of its own beyond one :data:`READAHEAD_CHUNK` buffer
        (``"read"``). CRCs are not checked: the bytes are not served from here, only cached."""
        if self.readahead == "off" or not extents or (self.readahead != "read" and not _HAS_FADVISE):
            return
        self._check_pid()
        with self._lock:
            if self._jobs is None:
                self._jobs = queue.SimpleQueue()
                self._ahead_thread = threading.Thread(target=self._ahead_loop, args=(self._jobs,),
                                                      name="shardkit-readahead", daemon=True)
                self._ahead_thread.start()
            self._jobs.put((self._ahead_gen, name, coalesce(extents)))

    def resident_share(self, names: Sequence[str]) -> float | None:
        """In ``"auto"`` mode, about the share of the pages of ``names`` that are in the page cache: a
        sample of :data:`RESIDENT_PROBES` pages spread over them (at least 4 per object), weighted by
        size; None in the other modes or where it cannot be asked. A reader asks it once per epoch: when
        all of a set is cached there is nothing to read ahead, and not even the hints are paid."""
        if self.readahead != "auto":
            return None
        resident = total = 0.0
        per = max(4, RESIDENT_PROBES // max(1, len(names)))
        for name in names:
            handle = self._acquire(name)
            try:
                probe = _Residency(handle.fd, handle.size)
                share = probe.share(per)
                probe.close()
            finally:
                self._release(handle)
            if share is None:
                return None
            resident += share * handle.size
            total += handle.size
        return resident / total if total else 1.0

    def read_bytes(self, name: str) -> bytes:
        """The whole object ``name``: a regular file of at most :data:`MAX_OBJECT_BYTES` (checked before
        reading; :class:`~shardkit.errors.UnsafeFileError` otherwise)."""
        fd, st = open_regular(self.root, name)
        with open(fd, "rb", buffering=0) as fh:  # closes fd
            if st.st_size > base.MAX_OBJECT_BYTES:
                raise UnsafeFileError(f"{self.describe(name)}: is {st.st_size} bytes, more than the "
                                      f"{base.MAX_OBJECT_BYTES} a manifest or index may have; not read")
            parts, left = [], st.st_size
            while left > 0 and (part := fh.read(left)):
                parts.append(part)
                left -= len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def size(self, name: str) -> int:
        """Bytes of the regular file ``name``; records its identity the first time (see the class)."""
        st = stat_regular(self.root, name)
        self._check_pid()
        with self._lock:
            self._ids.setdefault(name, identity(st))
        return st.st_size

    def read_into(self, name: str, ranges: Sequence[ByteRange | tuple[int, int, memoryview]]
                  ) -> list[RangeError]:
        try:
            handle = self._acquire(name)
        except OSError as exc:
            err = exc if isinstance(exc, OpenFailed) else OpenFailed(self.describe(name), exc.strerror or str(exc),
                                                                     exc.errno)
            return [(k, err) for k in range(len(ranges))]
        errors: list[RangeError] = []
        fd, preadv = handle.fd, os.preadv if _HAS_PREADV else None
        try:
            for k, (offset, length, dest) in enumerate(ranges):
                try:
                    view = dest if len(dest) == length else dest[:length]
                    got = preadv(fd, [view], offset) if preadv else 0  # one call, nearly always
                    if got != length:
                        got = _read_fully(fd, view, offset)  # finish a short read, or find EOF
                    if got != length:
                        errors.append((k, ShortRead(self.describe(name), got, length, offset)))
                except OSError as exc:
                    errors.append((k, exc))
        finally:
            self._release(handle)
        return errors

    def close(self) -> None:
        self._check_pid()
        with self._lock:
            self._ahead_gen += 1
            if self._jobs is not None:  # the thread ends after its current range; a later hint starts one
                self._jobs.put(None)
                self._jobs, self._ahead_thread = None, None
            for handle in self._fds.values():
                if handle.users:
                    handle.orphan = True  # a read in another thread uses it: closed after that read
                else:
                    _close(handle.fd)
            self._fds = OrderedDict()

    # -- read-ahead ------------------------------------------------------------------------------

    def _ahead_loop(self, jobs: queue.SimpleQueue) -> None:
        """The read-ahead thread: jobs in the order given, until the process ends (a daemon)."""
        buf = memoryview(bytearray(READAHEAD_CHUNK)) if self.readahead == "read" else None
        while True:
            job = jobs.get()
            if job is None:
                return
            gen, name, ranges = job
            if gen != self._ahead_gen or self._pid != os.getpid():
                continue
            try:
                handle = self._acquire(name)
            except OSError:
                continue  # read_into reports it when the batch comes
            try:
                self._ahead_job(handle, ranges, gen, buf)
            except OSError:
                pass  # a hint: the batch's own read reports the error
            finally:
                self._release(handle)

    def _ahead_job(self, handle: _Handle, ranges: list[tuple[int, int]], gen: int, buf: memoryview | None) -> None:
        """Read ahead one shard's ranges: read them (``"read"``), or ``fadvise(WILLNEED)`` them — in
        ``"auto"`` only those not wholly in the page cache already (:class:`_Residency`)."""
        resident = _Residency(handle.fd, handle.size) if self.readahead == "auto" else None
        try:
            for offset, length in ranges:
                if gen != self._ahead_gen:
                    break
                if buf is not None:
                    _read_fully(handle.fd, buf[:length], offset)
                elif resident is None or not resident.all_in(offset, length):
                    os.posix_fadvise(handle.fd, offset, length, os.POSIX_FADV_WILLNEED)
        finally:
            if resident is not None:
                resident.close()

    # -- descriptors -----------------------------------------------------------------------------

    def fd(self, name: str) -> int:
        """An open descriptor of ``name`` in this process, for callers that ``os.pread`` themselves;
        valid until :meth:`close` or until the cap evicts it. Not part of :class:`Storage`."""
        handle = self._acquire(name)
        self._release(handle)
        return handle.fd

    @property
    def open_files(self) -> int:
        """Descriptors this process holds open now."""
        self._check_pid()
        with self._lock:
            return len(self._fds)

    def _acquire(self, name: str) -> _Handle:
        """The handle of ``name``, opened if needed, marked in use until :meth:`_release`."""
        self._check_pid()
        with self._lock:
            table = self._fds
            handle = table.get(name)
            if handle is None:
                handle = self._open_shard(name)
                table[name] = handle
                handle.users += 1  # before evicting: a handle in use is never closed under its user
                self._evict(table)
            else:
                if os.fstat(handle.fd).st_size != handle.size:
                    raise ShardChanged(self.describe(name), f"the shard changed since the set was opened: it "
                                       f"had {handle.size} bytes and has {os.fstat(handle.fd).st_size} now")
                table.move_to_end(name)
                handle.users += 1
            return handle

    def _open_shard(self, name: str) -> _Handle:
        """Open ``name`` (a regular file) and check it is the file first seen under that name."""
        fd, st = open_regular(self.root, name)
        seen, now = self._ids.setdefault(name, identity(st)), identity(st)
        if seen != now:
            _close(fd)
            what = "was replaced" if seen[:2] != now[:2] else "was rewritten"
            raise ShardChanged(self.describe(name), f"the shard changed since the set was opened: it {what} "
                               f"({seen[2]} bytes then, {now[2]} now)")
        return _Handle(fd, st.st_size)

    def _release(self, handle: _Handle) -> None:
        with self._lock:
            handle.users -= 1
            if handle.users == 0:
                if handle.orphan:
                    _close(handle.fd)
                elif len(self._fds) > self._cap():  # everything was in use when it was opened
                    self._evict(self._fds)

    def _cap(self) -> int:
        return self.max_open if self.max_open is not None else MAX_OPEN_SHARDS

    def _evict(self, table: OrderedDict[str, _Handle]) -> None:
        """Close least recently used idle descriptors beyond the cap (called with the lock held)."""
        excess = len(table) - self._cap()
        if excess <= 0:
            return
        for name in [n for n, h in table.items() if h.users == 0][:excess]:
            _close(table.pop(name).fd)

    # -- lifetime --------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "max_open": self.max_open, "readahead": self.readahead, "ids": dict(self._ids)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.root, self.max_open = state["root"], state["max_open"]
        self.readahead = state.get("readahead", "fadvise")
        self._ids = dict(state.get("ids", {}))
        self._reset()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"


_FORK_LOCK = [threading.Lock()]
if hasattr(os, "register_at_fork"):  # a child must not inherit it held by one of the parent's threads
    os.register_at_fork(after_in_child=lambda: _FORK_LOCK.__setitem__(0, threading.Lock()))


class _Residency:
    """Whether byte ranges of an open file are in the page cache: ``mincore`` over a ``PROT_READ``
    mapping of the file (address space only: nothing is read or touched). Where ``mincore`` cannot be
    asked every range counts as not resident (read ahead, as ``"fadvise"`` does)."""

    def __init__(self, fd: int, size: int) -> None:
        self.libc, self.size, self.addr = _libc(), size, None
        if self.libc is not None and size > 0:
            addr = self.libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            self.addr = None if addr in (None, ctypes.c_void_p(-1).value) else addr

    def all_in(self, offset: int, length: int) -> bool:
        """Every page of ``[offset, offset + length)`` (clipped to the file) is in the page cache."""
        if self.addr is None:
            return False
        start = offset - offset % mmap.PAGESIZE
        end = min(offset + length, self.size)
        if end <= start:
            return True
        vec = ctypes.create_string_buffer(-(-(end - start) // mmap.PAGESIZE))
        if self.libc.mincore(self.addr + start, end - start, vec) != 0:
            return False
        return b"\0" not in vec.raw  # the low bit of each page's byte: resident

    def share(self, probes: int | None = None) -> float | None:
        """The share of ``probes`` pages spread evenly over the file that are in the page cache (one
        ``mincore`` of one page each: microseconds, whatever the file's size), of every page if None (one
        ``mincore`` over the file: about 1 ms per GB), or None where it cannot be asked."""
        if self.addr is None:
            return None if self.size else 1.0
        pages = -(-self.size // mmap.PAGESIZE)
        if probes is None:
            vec = ctypes.create_string_buffer(pages)
            if self.libc.mincore(self.addr, self.size, vec) != 0:
                return None
            return 1.0 - vec.raw.count(0) / pages
        picks = sorted({k * pages // probes for k in range(min(probes, pages))})
        vec = ctypes.create_string_buffer(1)
        resident = 0
        for page in picks:
            if self.libc.mincore(self.addr + page * mmap.PAGESIZE, 1, vec) != 0:
                return None
            resident += vec.raw[0] & 1
        return resident / len(picks)

    def close(self) -> None:
        if self.addr is not None:
            self.libc.munmap(self.addr, self.size)
            self.addr = None


def page_cache_share(path: str | os.PathLike[str]) -> float | None:
    """The share of the pages of the file at ``path`` that are in the page cache (``mincore`` over all of
    them; nothing is read), or None where it cannot be asked."""
    fd = os.open(path, os.O_RDONLY)
    try:
        probe = _Residency(fd, os.fstat(fd).st_size)
        try:
            return probe.share()
        finally:
            probe.close()
    finally:
        os.close(fd)


@functools.cache
def _libc() -> Any:
    """libc with ``mmap``/``munmap``/``mincore`` typed for ctypes, or None where there is none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    except (OSError, AttributeError):
        return None
    return libc


def _fork_lock() -> threading.Lock:
    return _FORK_LOCK[0]


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def coalesce(extents: Sequence[Extent], gap: int | None = None, chunk: int | None = None
             ) -> list[tuple[int, int]]:
    """``(offset, length)`` ranges covering ``extents`` (sorted by offset): neighbours less than ``gap``
    (default :data:`READAHEAD_GAP`) bytes apart are merged, and no range is longer than ``chunk``
    (default :data:`READAHEAD_CHUNK`; a long one is cut)."""
    gap = READAHEAD_GAP if gap is None else gap
    chunk = READAHEAD_CHUNK if chunk is None else chunk
    merged: list[list[int]] = []
    for offset, length, _crc in extents:
        if merged and offset - merged[-1][1] < gap:
            merged[-1][1] = max(merged[-1][1], offset + length)
        else:
            merged.append([offset, offset + length])
    return [(a, min(chunk, end - a)) for start, end in merged for a in range(start, end, chunk)]


def _read_fully(fd: int, view: memoryview, offset: int) -> int:
    """Read ``len(view)`` bytes at ``offset`` into ``view``; returns the bytes read (short at EOF)."""
    done = 0
    total = len(view)
    while done < total:
        if _HAS_PREADV:
            n = os.preadv(fd, [view[done:]], offset + done)
        else:  # pragma: no cover - platforms without preadv
            data = os.pread(fd, total - done, offset + done)
            n = len(data)
            view[done:done + n] = data
        if n <= 0:
            break
        done += n
    return done
