"""Shards of the DataLoader workers' private cache (:mod:`shardkit.storage.cache.worker`) fetched in blocks and
served while they arrive.

Why: fetched whole, a shard kept every worker's first batches waiting until its last byte was in and hashed
(epoch 0 with two workers ran at 0.5–0.7× one process, which serves 16 MB windows as they land). Here a
shard of the cache is cut into fixed blocks of ``block_bytes`` (:data:`BLOCK`, 8 MB); each block is one
conditional ranged GET (``If-Match`` on the ETag recorded when the set was opened), fetched by one process
of the machine, written to its offset of the shard's file and served to every worker from there at once.

On disk, under ``<cache>/tmp/<sha256>.fill/``:

- ``data``: the shard, each block written at its offset as it arrives (sparse until complete);
- ``have``: one byte per block, set to 1 only after the whole block is in ``data``;
- ``<k>.lock``: held (``flock``) by the process fetching block ``k``.

Rules:

- **One fetch per block.** A process takes a block's lock without waiting, checks ``have`` again and fetches.
  Read-ahead (:meth:`BlockFill.prefetch`) skips a block another process is fetching; a read waits on the
  block's lock (a shared ``flock``: woken by the kernel when the fetcher lets go, no polling) and looks again.
- **A dead or stalled fetcher.** The kernel drops the lock of a process that died: a waiter then takes the
  lock, finds the block unmarked and fetches it itself, over whatever half was written. A read that waited
  :data:`WAIT_SECONDS` for a fetcher alive but stuck names the shard and bytes in a warning and fetches the
  block too (the same bytes: the same conditional GET).
- **Checked before served.** Every range inside a member (known from :meth:`Storage.bind_members`) is served
  only after the whole member was read back and matched its CRC-32 (:class:`CorruptMember` otherwise), as
  the object store's windows are; a range outside every member is checked for length only.
- **Whole-shard sha256 at the end.** The process that marks a shard's last block hashes ``data`` in the
  background (:meth:`ShardCache.adopt`); a match makes it the shard's cache entry, read from then on like
  any entry; a mismatch removes it and fails this process's later reads of the shard with
  :class:`CorruptShard`. A shard replaced on the server fails the blocks not yet fetched with
  :class:`ShardChanged` (the ``If-Match``), as a one-process read does.
- **Bounded.** A shard being filled is on disk besides the cache's bound until it becomes an entry (at
  most the shards being read and read ahead); memory: the pieces of the blocks in flight
  (:data:`MAX_IN_FLIGHT` per process for read-ahead and as many for reads).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from shardkit.storage.base import Extent, Members, RangeError, ShortRead
from shardkit.storage.cache.store import DISK_ERRNOS, CacheDiskError, CorruptShard, ShardCache
from shardkit.storage.local import _read_fully
from shardkit.storage.windows import MB, CorruptMember

log = logging.getLogger(__name__)

__all__ = ["BLOCK", "BlockFill"]

#: bytes of one block (the last block of a shard may be shorter)
BLOCK = 8 * MB
#: after this long (seconds) waiting for another process's block, a read fetches it itself (an object
#: store request gives up within about 60 s: :mod:`shardkit.storage.obstore`)
WAIT_SECONDS = 120.0
#: blocks fetched at once by read-ahead, and as many by reads, per process
MAX_IN_FLIGHT = 16

#: a shard's object name, bytes and sha256 (the cache's key)
Shard = tuple[str, int, str]


class BlockFill:
    """This process's side of the shards of ``cache`` being filled block by block (module docstring).
    ``stream``: the storage's :meth:`Storage.stream`; ``describe``: its names for messages; ``stats``: a dict
    counting ``disk_gets`` and ``disk_bytes`` (blocks fetched here), under ``lock``. Not picklable: made per
    process by :class:`~shardkit.storage.cache.wrapper.CachedStorage`."""

    def __init__(self, cache: ShardCache, stream: Callable[..., int], describe: Callable[[str], str],
                 stats: dict[str, int], lock: threading.Lock, block: int | None = None) -> None:
        self.cache, self.block = cache, int(BLOCK if block is None else block)
        self._stream, self._describe, self._stats, self._lock = stream, describe, stats, lock
        self._inflight: dict[tuple[str, int], tuple[Future[bool], bool]] = {}
        self._pools: dict[bool, ThreadPoolExecutor] = {}
        #: shards whose whole-file sha256 failed in this process: their reads fail with it
        self._bad: dict[str, OSError] = {}
        #: shards being hashed and made entries by this process (set when done)
        self._finishing: dict[str, threading.Event] = {}

    # -- where things are ------------------------------------------------------------------------

    def _folder(self, sha: str) -> Path:
        return self.cache.root / "tmp" / f"{sha}.fill"

    def _blocks(self, size: int) -> int:
        """Blocks of a shard of ``size`` bytes: the last one takes the rest (up to twice ``block``), so that a
        shard's tail that no member holds (the end of the tar) is fetched with the last member."""
        return max(1, size // self.block)

    def _bounds(self, size: int, k: int) -> tuple[int, int]:
        """``(start, end)`` of block ``k``."""
        return k * self.block, size if k == self._blocks(size) - 1 else (k + 1) * self.block

    def _span_blocks(self, size: int, a: int, b: int) -> range:
        """The blocks holding bytes ``[a, b)``."""
        last = self._blocks(size) - 1
        return range(min(a // self.block, last), min(max(a, b - 1) // self.block, last) + 1)

    def _have(self, shard: Shard) -> bytes:
        """The ``have`` bytes of ``shard`` (all ones when it is an entry already; zeros where not written)."""
        _, size, sha = shard
        n = self._blocks(size)
        try:
            fd = os.open(self._folder(sha) / "have", os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return b"\1" * n if self.cache.path(sha).exists() else bytes(n)
        try:
            got = os.pread(fd, n, 0)
        finally:
            os.close(fd)
        return got + bytes(n - len(got))

    # -- the public side ---------------------------------------------------------------------------

    def prefetch(self, shard: Shard, extents: Sequence[Extent]) -> None:
        """Fetch, in the background, the blocks holding these members that no process has or fetches."""
        have = self._have(shard)
        wanted = sorted({k for e in extents for k in self._span_blocks(shard[1], e.offset, e.offset + e.length)})
        for k in wanted:
            if k < len(have) and not have[k]:
                self._submit(shard, k, patient=False)

    def read(self, shard: Shard, ranges: Sequence[Any], members: Members) -> list[RangeError]:
        """:meth:`Storage.read_into` of ``shard``'s ``ranges`` once the blocks under them are in, each range
        inside a member served after the member's CRC-32 matched."""
        name = shard[0]
        if name in self._bad:
            return [(k, self._bad[name]) for k in range(len(ranges))]
        spans = _member_spans(ranges, members)
        failed = self._ensure(shard, sorted({k for a, b, _ in spans for k in self._span_blocks(shard[1], a, b)}))
        fd = self._open(shard)
        if fd is None and (finishing := self._finishing.get(name)) is not None:
            finishing.wait()  # its data became the entry, or failed its sha256, just now
            fd = self._open(shard)
        if fd is None:  # gone between (its sha256 failed, or evicted): the read fails, the next one fetches
            err = self._bad.get(name) or OSError(errno.ENOENT, f"{self._describe(name)}: left the workers' "
                                                 "shard cache while being read; read it again")
            return [(k, err) for k in range(len(ranges))]
        try:
            return self._serve(fd, shard[1], ranges, spans, failed, self._describe(name))
        finally:
            os.close(fd)

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)

    # -- getting blocks ----------------------------------------------------------------------------

    def _submit(self, shard: Shard, k: int, patient: bool, again: bool = False) -> tuple[Future[bool], bool]:
        """The task fetching block ``k`` of ``shard`` in this process: the one under way, or a new one. A read
        (``patient``) takes over a read-ahead task not started yet; ``again``: a new one whatever is under way."""
        key = (shard[2], k)
        while True:
            with self._lock:
                got = self._inflight.get(key)
                if got is None or again:
                    if patient not in self._pools:
                        self._pools[patient] = ThreadPoolExecutor(MAX_IN_FLIGHT, thread_name_prefix="shardkit-block")
                    future = self._pools[patient].submit(self._fetch, shard, k, patient)
                    self._inflight[key] = (future, patient)
                    break
                if got[1] or not patient:
                    return got
            if not got[0].cancel():  # under way already (cancel runs the callbacks: never under the lock)
                return got
        future.add_done_callback(lambda f: self._done(key, f))
        return future, patient

    def _done(self, key: tuple[str, int], future: Future[bool]) -> None:
        with self._lock:
            if self._inflight.get(key, (None,))[0] is future:
                del self._inflight[key]

    def _ensure(self, shard: Shard, blocks: list[int]) -> dict[int, OSError]:
        """Wait until ``blocks`` of ``shard`` are in (fetching those no one fetches); the failed ones' errors."""
        have = self._have(shard)
        tasks = {k: self._submit(shard, k, patient=True) for k in blocks if k < len(have) and not have[k]}
        failed: dict[int, OSError] = {}
        deadline = time.monotonic() + WAIT_SECONDS
        for k, (future, patient) in tasks.items():
            for _ in range(2):
                try:
                    if future.result(timeout=max(0.0, deadline - time.monotonic())):
                        break
                except TimeoutError:
                    self._overdue(shard, k, failed)
                    break
                except CancelledError:  # a read of another thread took this read-ahead task over
                    pass
                except OSError as exc:
                    if isinstance(exc, CacheDiskError):  # the cache's disk: the caller reads without it
                        raise
                    if patient:
                        failed[k] = exc
                        break
                # a read-ahead task that skipped the block (another process has it) or failed: wait here
                future, patient = self._submit(shard, k, patient=True, again=True)
        return failed

    def _overdue(self, shard: Shard, k: int, failed: dict[int, OSError]) -> None:
        """Block ``k`` waited for :data:`WAIT_SECONDS` (its fetcher is alive but stuck): fetched here too."""
        log.warning("%s: bytes %d-%d have been fetched by another worker for %.0f s; fetching them here too",
                    self._describe(shard[0]), *self._bounds(shard[1], k), WAIT_SECONDS)
        try:
            if not self._have(shard)[k]:
                self._download(shard, k)
        except OSError as exc:
            if isinstance(exc, CacheDiskError):
                raise
            failed[k] = exc

    def _fetch(self, shard: Shard, k: int, patient: bool) -> bool:
        """Block ``k`` in ``data`` (fetched here unless another process does); False when another process
        fetches it and this task is read-ahead (not ``patient``), which a read waits for on the block's lock."""
        while not self._have(shard)[k]:
            lock = self._try_lock(shard[2], k)
            if lock is not None:
                try:
                    if not self._have(shard)[k]:
                        self._download(shard, k)
                finally:
                    os.close(lock)
                break
            if not patient:
                return False
            self._wait_unlocked(shard[2], k)
        return True

    def _wait_unlocked(self, sha: str, k: int) -> None:
        """Until the task holding block ``k``'s lock lets go (a shared ``flock``: the kernel wakes this thread;
        no polling). A holder that dies lets go at once; one that hangs is left behind by :meth:`_ensure`."""
        try:
            fd = os.open(self._folder(sha) / f"{k}.lock", os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:  # the shard became an entry meanwhile
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        finally:
            os.close(fd)

    def _try_lock(self, sha: str, k: int) -> int | None:
        """The lock of block ``k`` held (a descriptor to close), or None when another task holds it."""
        folder = self._folder(sha)
        folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(folder / f"{k}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def _download(self, shard: Shard, k: int) -> None:
        """Fetch block ``k`` into ``data`` at its offset, then mark it in ``have``; the whole shard, once every
        block is in, is hashed and made an entry in the background."""
        name, size, sha = shard
        a, b = self._bounds(size, k)
        folder = self._folder(sha)
        folder.mkdir(mode=0o700, exist_ok=True)
        disk: list[OSError] = []
        try:
            fd = os.open(folder / "data", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                n = self._stream(name, _writer(fd, a, disk), a, b)
            finally:
                os.close(fd)
            _mark(folder / "have", k)
        except OSError as exc:
            first = disk[0] if disk else exc
            if first.errno in DISK_ERRNOS and not isinstance(first, CorruptShard):
                raise CacheDiskError(first.errno, f"{self.cache.root}: {first.strerror} while caching "
                                     f"{self._describe(name)}") from None
            raise
        with self._lock:
            self._stats["disk_gets"] += 1
            self._stats["disk_bytes"] += n
        if all(self._have(shard)):
            self._submit_finish(shard)

    def _submit_finish(self, shard: Shard) -> None:
        with self._lock:
            if shard[0] in self._finishing:
                return
            self._finishing[shard[0]] = threading.Event()
            if False not in self._pools:
                self._pools[False] = ThreadPoolExecutor(MAX_IN_FLIGHT, thread_name_prefix="shardkit-block")
            self._pools[False].submit(self._finish, shard)

    def _finish(self, shard: Shard) -> None:
        """``data`` hashed and made the shard's entry (:meth:`ShardCache.adopt`); a mismatch is remembered."""
        name, size, sha = shard
        folder = self._folder(sha)
        try:
            if self.cache.adopt(sha, size, folder / "data", self._describe(name)):
                log.info("cached %s (%.1f MB, fetched in blocks) as %s", self._describe(name), size / 1e6,
                         self.cache.path(sha))
        except OSError as exc:
            log.error("%s", exc)
            with self._lock:
                self._bad[name] = exc
        finally:
            if self.cache.path(sha).exists() or name in self._bad:
                shutil.rmtree(folder, ignore_errors=True)
            with self._lock:
                self._finishing.pop(name).set()

    # -- serving ---------------------------------------------------------------------------------

    def _open(self, shard: Shard) -> int | None:
        """A descriptor of the shard's ``data``, or of its entry once it became one; None when neither is there."""
        try:
            return os.open(self._folder(shard[2]) / "data", os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return self.cache.open(shard[2], shard[1])

    def _serve(self, fd: int, size: int, ranges: Sequence[Any], spans: list[tuple[int, int, int | None]],
               failed: dict[int, OSError], where: str) -> list[RangeError]:
        """Copy each range out of ``fd``, each member whole and CRC-checked first (once for neighbouring ranges
        of one member)."""
        errors: list[RangeError] = []
        last: tuple[tuple[int, int], memoryview | OSError] | None = None
        for k, ((offset, length, dest), (a, b, crc)) in enumerate(zip(ranges, spans)):
            got: memoryview | OSError | None = next((failed[j] for j in self._span_blocks(size, a, b) if j in failed),
                                                     None)
            if got is None:
                if last is None or last[0] != (a, b):
                    last = ((a, b), _checked(fd, a, b, crc, where))
                got = last[1]
            if isinstance(got, OSError):
                errors.append((k, got))
                continue
            view = dest if len(dest) == length else dest[:length]
            view[:] = got[offset - a:offset - a + length]
        return errors


# -- helpers ----------------------------------------------------------------------------------------


def _member_spans(ranges: Sequence[Any], members: Members) -> list[tuple[int, int, int | None]]:
    """Per range: ``(start, end, CRC-32)`` of the member holding it, or the range itself with CRC None."""
    starts, ends, crcs = members
    out: list[tuple[int, int, int | None]] = []
    for offset, length, _ in ranges:
        m = int(np.searchsorted(starts, offset, side="right")) - 1
        if m >= 0 and offset + length <= ends[m]:
            out.append((int(starts[m]), int(ends[m]), int(crcs[m])))
        else:
            out.append((int(offset), int(offset) + int(length), None))
    return out


_LOCAL = threading.local()
#: the largest buffer a reading thread keeps for the members it checks (bytes)
_KEEP_BYTES = 8 * MB


def _checked(fd: int, a: int, b: int, crc: int | None, where: str) -> memoryview | OSError:
    """Bytes ``[a, b)`` of ``fd``, in this thread's buffer (valid until its next call: a fresh allocation per
    member cost page faults on every byte); :class:`ShortRead`, or :class:`CorruptMember` when ``crc`` does
    not match."""
    buf = getattr(_LOCAL, "buf", None)
    if buf is None or len(buf) < b - a:
        buf = bytearray(max(b - a, 1 << 20))
        if len(buf) <= _KEEP_BYTES:  # a larger member gets a buffer of its own, not kept
            _LOCAL.buf = buf
    data = memoryview(buf)[:b - a]
    try:
        got = _read_fully(fd, data, a)
    except OSError as exc:
        return exc
    if got != b - a:
        return ShortRead(where, got, b - a, a)
    if crc is not None and zlib.crc32(data) != crc:
        return CorruptMember(where, a, b - a)
    return data


def _writer(fd: int, offset: int, disk: list[OSError]) -> Callable[[Any], None]:
    """``write(piece)``: the pieces of a block written to ``fd`` one after another from ``offset``; an error
    of the disk is kept in ``disk`` (told from the storage's own errors) and raised."""
    pos = offset

    def write(piece: Any) -> None:
        nonlocal pos
        view = memoryview(piece).cast("B")
        try:
            while view:
                n = os.pwrite(fd, view, pos)
                view, pos = view[n:], pos + n
        except OSError as exc:
            disk.append(exc)
            raise

    return write


def _mark(path: Path, k: int) -> None:
    """Set block ``k``'s byte of ``have`` (after its bytes are in ``data``)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.pwrite(fd, b"\1", k)
    finally:
        os.close(fd)
