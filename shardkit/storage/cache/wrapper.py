"""The shard cache as a :class:`~shardkit.storage.base.Storage`: :class:`CachedStorage` wraps another storage
(an object store) and reads each shard its manifest lists from a verified entry of a
:class:`~shardkit.storage.cache.store.ShardCache`, downloaded whole first; everything else goes to the
wrapped storage. How entries are verified, pinned and evicted: :mod:`shardkit.storage.cache.store`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shardkit.storage.base import Capabilities, ShortRead, Storage
from shardkit.storage.cache.store import DISK_ERRNOS, CacheDiskError, ShardCache
from shardkit.storage.local import _read_fully

log = logging.getLogger(__name__)

__all__ = ["CachedStorage", "read_ranges", "shard_digests"]


class CachedStorage(Storage):
    """``inner`` with the machine-wide shard cache in front: a shard its manifest lists (with size and
    sha256, learnt in :meth:`open_set`) is read from its cache entry, downloaded whole first
    (:meth:`Storage.stream`: one conditional GET of an object store, memory one 8 MB piece) and verified;
    every other object, and a shard larger than the cache, is ``inner``'s. Sizes, metadata and read-ahead
    hints for what is not cached go to ``inner``. ``shards``: ``{name: (bytes, sha256)}`` when the manifest
    was read already (else learnt in :meth:`open_set`). Pickles to ``inner``, the cache and the shards' digests."""

    def __init__(self, inner: Storage, cache: ShardCache, shards: dict[str, tuple[int, str]] | None = None) -> None:
        self.inner, self.cache = inner, cache
        #: (bytes, sha256) of each shard, from the manifest: the cache's keys
        self._shards: dict[str, tuple[int, str]] = dict(shards or {})
        self._opened: dict[str, bytes | BaseException] = {}
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._filling: dict[str, Any] = {}
        #: the cache's disk failed (full) in this process: every read goes to ``inner``
        self._off = False
        self._pool: ThreadPoolExecutor | None = None
        #: this process's whole shards downloaded into the cache (``disk_gets``, ``disk_bytes``)
        self.stats = {"disk_gets": 0, "disk_bytes": 0}

    def _here(self) -> None:
        if self._pid != os.getpid():  # a forked child: its own lock and threads
            self._reset()

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def open_set(self, manifest: str) -> None:
        """``inner``'s, then the shards' sizes and sha256 from the manifest (kept for :meth:`read_bytes`)."""
        self.inner.open_set(manifest)
        try:
            data = self.inner.read_bytes(manifest)
        except Exception as exc:  # the reader's read_bytes raises it, as without a cache
            self._opened[manifest] = exc
            return
        self._opened[manifest] = data
        self._shards.update(shard_digests(data))

    def read_bytes(self, name: str) -> bytes:
        got = self._opened.pop(name, None)
        if got is None:
            return self.inner.read_bytes(name)
        if isinstance(got, BaseException):
            raise got
        return got

    def size(self, name: str) -> int:
        return self.inner.size(name)

    def describe(self, name: str) -> str:
        return self.inner.describe(name)

    def read_into(self, name: str, ranges: Sequence[Any]) -> list[tuple[int, OSError]]:
        self._here()
        done = self._read_cached(name, ranges) if name in self._shards and not self._off else None
        return self.inner.read_into(name, ranges) if done is None else done

    def prefetch(self, name: str, extents: Sequence[Any]) -> None:
        """The shard's entry, downloaded in the background (once at a time); ``inner``'s hint otherwise."""
        self._here()
        if self._off or name not in self._shards or self._shards[name][0] > self.cache.limit:
            self.inner.prefetch(name, extents)
            return
        with self._lock:
            if name not in self._filling:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(4, thread_name_prefix="shardkit-cache")
                self._filling[name] = self._pool.submit(self._fill, name)

    def set_readahead(self, mode: str) -> None:
        self.inner.set_readahead(mode)

    def bind_members(self, members: Any) -> None:
        self.inner.bind_members(members)

    def stream(self, name: str, write: Callable[[memoryview], None]) -> int:
        return self.inner.stream(name, write)

    def close(self) -> None:
        self.inner.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"inner": self.inner, "cache": self.cache, "shards": dict(self._shards)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.inner, self.cache, self._shards = state["inner"], state["cache"], state["shards"]
        self._opened = {}
        self._reset()

    def __repr__(self) -> str:
        return f"CachedStorage({self.inner!r}, {self.cache!r})"

    # -- the cache ---------------------------------------------------------------------------------

    def _read_cached(self, name: str, ranges: Sequence[Any]) -> list[tuple[int, OSError]] | None:
        """:meth:`read_into` from the shard's entry (downloaded first if needed); None when the shard is too
        large for the cache."""
        try:
            fd = self._cached(name)
        except CacheDiskError as exc:
            log.warning("%s; reading without the cache from now on in this process", exc)
            self._off = True
            return None
        except OSError as exc:
            return [(k, exc) for k in range(len(ranges))]
        if fd is None:
            return None
        try:
            return read_ranges(fd, ranges, self.describe(name))
        finally:
            os.close(fd)  # unpins the entry

    def _cached(self, name: str) -> int | None:
        """A pinned descriptor of shard ``name`` in the cache, downloaded (verified) first if needed; None
        when it is too large for the cache."""
        size, sha = self._shards[name]
        return self.cache.get(sha, size, functools.partial(self._download, name), self.describe(name))

    def _fill(self, name: str) -> None:
        """Prefetch into the cache: the shard's entry, downloaded unless there (errors: read_into's)."""
        try:
            fd = self._cached(name)
            if fd is not None:
                os.close(fd)
        except Exception as exc:  # the read that needs it fetches again and reports
            log.debug("prefetch of %s into the cache failed: %s", self.describe(name), exc)
        finally:
            with self._lock:
                self._filling.pop(name, None)

    def _download(self, name: str, write: Callable[[Any], None]) -> None:
        """The whole shard, streamed to ``write`` as the object whose identity was recorded."""
        log.info("downloading %s into %s", self.describe(name), self.cache.root)
        disk: list[OSError] = []

        def to_disk(chunk: Any) -> None:
            try:
                write(chunk)
            except OSError as exc:  # the cache's disk, not the storage: told apart below
                disk.append(exc)
                raise

        try:
            n = self.inner.stream(name, to_disk)
        except OSError:
            if disk and disk[0].errno in DISK_ERRNOS:
                raise CacheDiskError(disk[0].errno, f"{self.cache.root}: {disk[0].strerror} while caching "
                                     f"{self.describe(name)}") from None
            raise
        with self._lock:
            self.stats["disk_gets"] += 1
            self.stats["disk_bytes"] += n


# -- helpers ----------------------------------------------------------------------------


def read_ranges(fd: int, ranges: Sequence[Any], where: str) -> list[tuple[int, OSError]]:
    """Fill ``(offset, length, dest)`` ranges from the open entry ``fd``; the failed ones as ``(position, error)``."""

    errors: list[tuple[int, OSError]] = []
    for k, (offset, length, dest) in enumerate(ranges):
        view = dest if len(dest) == length else dest[:length]
        try:
            got = _read_fully(fd, view, offset)
        except OSError as exc:
            errors.append((k, exc))
            continue
        if got != length:
            errors.append((k, ShortRead(where, got, length, offset)))
    return errors


def shard_digests(manifest: bytes) -> dict[str, tuple[int, str]]:
    """``{shard name: (bytes, sha256)}`` of a manifest's bytes ({} if it cannot be parsed: the reader's own
    parser says what is wrong with it)."""
    try:
        return {str(e["name"]): (int(e["bytes"]), str(e["sha256"])) for e in json.loads(manifest)["shards"]}
    except Exception:
        return {}
