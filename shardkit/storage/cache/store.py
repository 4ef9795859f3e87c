"""The store of the shard cache: whole verified shards of sets on object storage in a local folder
(``cache_dir``), shared by the processes of one machine: DataLoader workers, later epochs and later runs
read a shard downloaded once. The :class:`~shardkit.storage.base.Storage` that reads through it is
:class:`~shardkit.storage.cache.wrapper.CachedStorage`.

Why whole shards: the windows a reader fetches (:mod:`shardkit.storage.windows`) depend on the epoch's
order and on the worker, so a later epoch or another worker rarely asks for the same window again; it
always asks for the same shards.

- **Content-addressed.** An entry is ``DIR/<sha256>.tar``, named by the manifest's sha256 of the shard:
  two sets (or versions) sharing a shard share its entry, and a shard replaced in the bucket is another
  entry.
- **Verified before use, never torn.** A download goes to ``DIR/tmp/<sha256>.<pid>.<thread>.part`` while
  its sha256 is computed; only when it matches the manifest (and the size does) is it ``fsync``-ed and
  renamed to its entry name (an atomic rename): an entry that exists is complete and verified. A crash
  leaves a ``.part`` file that is never read (removed by a later eviction pass once an hour old). When
  an entry is opened its size is checked again.
- **Checked again before first use.** An entry is opened like a set's files (``O_NOFOLLOW | O_NONBLOCK``,
  regular files only: a FIFO never hangs a reader, a symlink is never followed) and, the first time a
  process uses it, hashed against the manifest's sha256: a file planted under an entry's name, of any
  size, is dropped and the shard downloaded again. A folder under an entry's name is refused by name.
- **One download per shard.** A process that needs an entry takes ``DIR/tmp/<sha256>.lock`` (``flock``,
  exclusive) before downloading it; another process (or thread) needing the same shard waits on that
  lock and then finds the entry. The holder removes the lock file before releasing it (a waiter that then
  holds a removed file's lock tries again), so lock files do not pile up.
- **A cache that cannot be used is not an error of the set.** A ``cache_dir`` that cannot be made or
  written (a file, a read-only disk, ``/proc``) is a :class:`~shardkit.errors.UsageError` when the set is
  opened; a disk that fills up while a shard is downloaded (:class:`CacheDiskError`) turns the cache off
  for the process, with one warning, and reads go on uncached.
- **Bounded, LRU, never evicting an entry in use.** An entry is *pinned* while a reader holds it open
  with a shared ``flock`` on it (each read call opens, locks, reads, closes). After each new entry,
  entries are evicted oldest use first (``mtime``, touched on every open) until the entries total at
  most ``limit`` bytes; an entry that cannot be locked exclusively at once is in use and is skipped.
  So the folder holds at most ``limit`` bytes plus the entries pinned at that moment (at most one shard
  per read call in progress, plus one being downloaded per process); eviction passes run under
  ``DIR/.lock``. A shard larger than ``limit`` is not cached.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from shardkit.errors import UsageError

log = logging.getLogger(__name__)

__all__ = ["DISK_ERRNOS", "CacheDiskError", "CorruptShard", "ShardCache"]

#: a ``.part`` file older than this (seconds) is a crashed download's and is removed by an eviction pass
STALE_PART_SECONDS = 3600


#: errors of the cache's own disk (full, read-only, no permission): the cache is turned off, reads go on
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)
_OPEN_ENTRY = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK


class CorruptShard(OSError):
    """A downloaded shard does not match the manifest's sha256 or size: it is not cached nor read."""


class CacheDiskError(OSError):
    """The cache's own disk failed a write (full, read-only): not a failure of the shard or the storage."""


class ShardCache:
    """Whole verified shards under ``root``, at most ``limit`` bytes (see the module docstring).
    Thread- and process-safe; pickles to its root, limit and ``private``.

    ``private``: ``root`` is a folder only this user's processes can write, made for one reader (mode 0700:
    :mod:`shardkit.storage.cache.worker`): an entry there was put by a download that verified it, so a process
    does not hash it again on first use (sizes are still checked), and entries are not ``fsync``-ed (the
    folder is removed with its process: no crash to survive)."""

    def __init__(self, root: str | os.PathLike[str], limit: int, *, private: bool = False) -> None:
        self.root = Path(root)
        self.limit = int(limit)
        self.private = private
        try:
            (self.root / "tmp").mkdir(parents=True, exist_ok=True)
            if not os.access(self.root / "tmp", os.W_OK):
                raise OSError(errno.EROFS, "cannot be written")
        except OSError as exc:
            raise UsageError(f"cache_dir {self.root} cannot be used ({exc.strerror or exc}); pass a writable folder "
                             "on a local disk, or leave cache_dir out to read without a cache") from None
        #: (sha256, st_dev, st_ino) of the entries this process hashed and found right
        self._verified: set[tuple[str, int, int]] = set()

    def path(self, sha256: str) -> Path:
        return self.root / f"{sha256}.tar"

    def open(self, sha256: str, size: int) -> int | None:
        """A descriptor of the complete entry ``sha256``, pinned (shared lock) until it is closed, or None
        when there is none (a file under its name that is not a regular file of the shard's size and
        sha256 is dropped: None). Marks the entry used now (LRU)."""
        path = self.path(sha256)
        try:
            fd = os.open(path, _OPEN_ENTRY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            return self._drop(path, None, "a symbolic link")
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise UsageError(f"{path}: not a regular file but a folder, under a name of the shard cache; remove it")
            if not stat.S_ISREG(st.st_mode) or st.st_size != size:
                return self._drop(path, fd, "not a regular file" if not stat.S_ISREG(st.st_mode)
                                  else f"{st.st_size} bytes, not {size}")
            fcntl.flock(fd, fcntl.LOCK_SH)
            if not self.private and (sha256, st.st_dev, st.st_ino) not in self._verified:
                if _sha256_of(fd) != sha256:
                    return self._drop(path, fd, "other bytes than the manifest's sha256")
                self._verified.add((sha256, st.st_dev, st.st_ino))
            os.utime(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        return fd

    def _drop(self, path: Path, fd: int | None, why: str) -> None:
        """Remove what lies under an entry's name and is not the shard (only if it is still the thing
        opened as ``fd``); None: the caller downloads the shard again."""
        try:
            here = os.stat(path, follow_symlinks=False)
            if fd is None or (here.st_dev, here.st_ino) == (os.fstat(fd).st_dev, os.fstat(fd).st_ino):
                path.unlink()
                log.warning("%s: %s, not the shard the manifest names; removed from the cache, fetching it again",
                            path, why)
        except FileNotFoundError:
            pass
        finally:
            if fd is not None:
                os.close(fd)
        return None

    def get(self, sha256: str, size: int, download: Callable[[Callable[[bytes], None]], None],
            where: str = "") -> int | None:
        """A pinned descriptor of entry ``sha256`` (``size`` bytes), downloading it first if needed:
        ``download(write)`` calls ``write`` with the shard's bytes in order. None when the shard is larger
        than the cache. Raises :class:`CorruptShard` for a download that does not match, or the
        download's own error."""
        if size > self.limit:
            return None
        fd = self.open(sha256, size)
        if fd is not None:
            return fd
        with self._download_lock(sha256):  # one download per shard; the others wait here
            fd = self.open(sha256, size)
            if fd is None:
                fd = self._fill(sha256, size, download, where)
        self.evict()
        return fd

    @contextlib.contextmanager
    def _download_lock(self, sha256: str) -> Iterator[None]:
        """Hold ``tmp/<sha256>.lock`` exclusively; the holder removes the file before releasing it, and a
        waiter that got the lock of a removed file takes the new one."""
        path = self.root / "tmp" / f"{sha256}.lock"
        while True:
            lock = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    current = os.stat(path, follow_symlinks=False).st_ino == os.fstat(lock).st_ino
                except FileNotFoundError:
                    current = False
                if current:
                    try:
                        yield
                    finally:
                        with contextlib.suppress(FileNotFoundError):
                            path.unlink()
                    return
            finally:
                os.close(lock)  # releases the lock

    def _fill(self, sha256: str, size: int, download: Callable[[Callable[[bytes], None]], None], where: str) -> int:
        part = self.root / "tmp" / f"{sha256}.{os.getpid()}.{threading.get_ident()}.part"
        digest = hashlib.sha256()
        got = 0
        t0 = time.monotonic()
        try:
            with open(part, "wb") as fh:
                def write(data: bytes) -> None:
                    nonlocal got
                    digest.update(data)
                    fh.write(data)
                    got += len(data)

                download(write)
                fh.flush()
                if not self.private:  # a private cache never outlives its process: no crash to survive
                    os.fsync(fh.fileno())
            if got != size or digest.hexdigest() != sha256:
                raise CorruptShard(f"{where}: downloaded {got} bytes with sha256 {digest.hexdigest()[:16]}…, the "
                                   f"manifest says {size} bytes and {sha256[:16]}…; not cached nor read (run "
                                   "'shardkit verify' on the set)")
            fd = os.open(part, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_SH)  # pinned before anyone can see it
            os.rename(part, self.path(sha256))
            st = os.fstat(fd)
            self._verified.add((sha256, st.st_dev, st.st_ino))
        except BaseException as exc:
            part.unlink(missing_ok=True)
            if isinstance(exc, OSError) and not isinstance(exc, CorruptShard | CacheDiskError) and \
                    exc.errno in DISK_ERRNOS:
                raise CacheDiskError(exc.errno, f"{self.root}: {exc.strerror} while caching {where}") from None
            raise
        if not self.private:
            _fsync_dir(self.root)
        log.info("cached %s (%.1f MB in %.2f s) as %s", where, size / 1e6, time.monotonic() - t0, self.path(sha256))
        return fd

    def entries(self) -> list[tuple[float, int, Path]]:
        """``(last use, bytes, path)`` of every entry, oldest use first."""
        out = []
        for p in self.root.glob("*.tar"):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            out.append((st.st_mtime, st.st_size, p))
        return sorted(out)

    def used(self) -> int:
        """Bytes of all entries now."""
        return sum(size for _, size, _ in self.entries())

    def evict(self) -> None:
        """Remove least recently used entries not in use until at most ``limit`` bytes remain (and stale
        ``.part`` files)."""
        lock = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = self.entries()
            total = sum(size for _, size, _ in entries)
            for _, size, path in entries:
                if total <= self.limit:
                    break
                if _remove_unpinned(path):
                    total -= size
            now = time.time()
            for part in (self.root / "tmp").glob("*.part"):
                try:
                    if now - part.stat().st_mtime > STALE_PART_SECONDS:
                        part.unlink()
                except FileNotFoundError:
                    pass
        finally:
            os.close(lock)

    def __getstate__(self) -> dict[str, object]:
        return {"root": str(self.root), "limit": self.limit, "private": self.private}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["root"], state["limit"], private=bool(state.get("private")))  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"ShardCache({str(self.root)!r}, limit={self.limit})"


def _sha256_of(fd: int) -> str:
    """The sha256 of the whole file open as ``fd``, read in 8 MB pieces."""
    digest, offset = hashlib.sha256(), 0
    while chunk := os.pread(fd, 8 << 20, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def _remove_unpinned(path: Path) -> bool:
    """Unlink ``path`` if no one holds it (an exclusive lock is granted at once); whether it was removed."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
