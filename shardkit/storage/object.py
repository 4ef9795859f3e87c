"""Shard sets on object storage: :class:`ObjectStorage`, the :class:`~shardkit.storage.base.Storage`
of an ``s3://``, ``gs://``, ``az://`` or ``http(s)://`` URL, read with obstore
(:func:`shardkit.storage.location.open_storage` picks it for such a location).

How reads hide latency (a small GET costs 30–100 ms before its first byte):

- the shard's members (data and ``.mp``) and their CRC-32s are known from the index
  (:meth:`ObjectStorage.bind_members`). A read inside a member fetches whole members, grouped into
  *windows* (:mod:`shardkit.storage.windows`): runs of members with gaps of at most ``GAP`` (1 MB), at
  most ``WINDOW_MAX`` (16 MB) each (a larger member is a window of its own);
  the windows of one call are fetched concurrently;
- :meth:`ObjectStorage.prefetch` fetches the windows of a shuffle window's members in the background
  (:data:`MAX_IN_FLIGHT` at a time) before the batches need them;
- every member is checked against its CRC-32 before any of its bytes is served: a mismatch fails the
  ranges inside it with :class:`CorruptMember` (the reader's ``ShardReadError``, or a skip with
  ``on_error="skip"``), never wrong audio;
- the ETag of every shard is recorded when the set is opened (the HEAD that reads its size; else the
  first GET's) and pickled to DataLoader workers with the storage; every ranged GET carries it as
  ``If-Match`` (and the answer's ETag is compared too, for a server that ignores ``If-Match``), so a shard
  replaced under a running reader fails its reads with :class:`ShardChanged` ("the shard changed since
  the set was opened"), and every later read of that shard fails at once;
- fetched windows are kept in a cache of at most ``cache_bytes`` (default :data:`CACHE_BYTES`, 512 MB:
  two default shuffle windows); a window prefetch fetched is kept until each hinted member in it was
  served once, unless nothing else can go (:class:`~shardkit.storage.windows.WindowCache`). Memory held:
  the cache, plus at most :data:`MAX_IN_FLIGHT` windows being fetched by prefetch, plus the windows of
  read calls in progress.

A range outside the known members is read with plain ranged GETs (coalesced), checked for length only.
With ``storage_options["cache_dir"]``, :meth:`ObjectStorage.from_location` puts the machine-wide shard
cache in front (:class:`~shardkit.storage.cache.wrapper.CachedStorage`): whole shards are then read from
there instead.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np

from shardkit.errors import UsageError
from shardkit.storage import obstore as locate
from shardkit.storage import windows as win
from shardkit.storage.base import ByteRange, Capabilities, Extent, Members, RangeError, ShardChanged, ShortRead, Storage
from shardkit.storage.cache import CachedStorage, ShardCache
from shardkit.storage.location import Location
from shardkit.storage.windows import MB, CorruptMember, Failed, TagMismatch, Window, WindowCache, covers, serve
from shardkit.units import parse_size

log = logging.getLogger(__name__)

__all__ = ["CACHE_BYTES", "CorruptMember", "ObjectStorage"]

#: background window GETs in flight per process
MAX_IN_FLIGHT = 16
#: default bound of the cache of fetched windows, per process
CACHE_BYTES = 512 * MB
#: default bound of ``cache_dir`` (``storage_options["cache_dir_bytes"]``)
DISK_CACHE_BYTES = 20_000_000_000
#: a window that takes longer than this is logged at INFO
SLOW_SECONDS = 1.0

class ObjectStorage(Storage):
    """A shard set at an object-store URL (``s3://bucket/prefix/``, ``gs://…``, ``az://…``,
    ``http(s)://…``), read with obstore. Thread-safe; pickles to its URL and options.

    ``storage_options``: obstore settings (see :func:`shardkit.storage.obstore.make_store`); credentials and
    endpoint otherwise come from the standard environment. ``cache_bytes``: bound of the in-memory window
    cache per process (int or a size string, default 512 MB). See the module docstring for how reads work.
    The disk cache (``cache_dir``) is a wrapper: :meth:`from_location`.
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None, *,
                 cache_bytes: int | str = CACHE_BYTES, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        import importlib.util

        if importlib.util.find_spec("obstore") is None:
            raise UsageError(f"{url}: reading object storage needs obstore: pip install 'shardkit[remote]'")
        self.url = url.rstrip("/") + "/"
        self.storage_options = dict(storage_options or {})
        if set(self.storage_options) & set(locate.LOCAL_KEYS):
            raise UsageError(f"{url}: cache_dir is a wrapper around the storage: open it with "
                             "shardkit.storage.open_storage(url, {..., 'cache_dir': DIR}) or "
                             "CachedStorage(ObjectStorage(url), ShardCache(DIR, limit))")
        self.cache_bytes = parse_size(cache_bytes) if isinstance(cache_bytes, str) else int(cache_bytes)
        self.max_in_flight = int(max_in_flight)
        self._members: Callable[[str], Members | None] | None = None
        #: the ETag of each object when the set was opened (None: the server gives none)
        self._tags: dict[str, str | None] = {}
        #: (bytes, sha256) of each shard, from the manifest: the disk cache's keys
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._store: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._getters: ThreadPoolExecutor | None = None
        self._changed: dict[str, ShardChanged] = {}
        self._cache = WindowCache(self.cache_bytes)
        self._inflight: dict[tuple[str, int, int], Future[Window]] = {}
        self._preloaded: dict[str, Any] = {}
        self._sizes: dict[str, Any] = {}
        self._logged_first = False
        self._stall = locate.Stall()
        #: this process's counters: ranges served from the cache (``hits``) or not (``misses``), windows a
        #: read waited for because prefetch was already fetching them (``joined``), GETs and bytes fetched
        #: by prefetch (``prefetch_gets``, ``prefetch_bytes``) and by reads (``read_gets``, ``read_bytes``)
        self.stats = dict.fromkeys(("hits", "misses", "joined", "prefetch_gets", "prefetch_bytes", "read_gets",
                                    "read_bytes"), 0)

    def _client(self) -> Any:
        """This process's obstore store (made on first use; refused after an unsafe fork)."""
        if self._pid != os.getpid():
            locate.check_process(self.url)
            with locate.fork_lock():
                if self._pid != os.getpid():
                    members = self._members
                    self._reset()
                    self._members = members
        locate.check_process(self.url)
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = locate.make_store(self.url, self.storage_options)
        locate.mark_used()
        return self._store

    # -- metadata ----------------------------------------------------------------------------------

    @classmethod
    def from_location(cls, location: Location, storage_options: Mapping[str, Any] | None = None) -> Storage:
        """The storage of ``location``; with ``storage_options["cache_dir"]`` (a local folder that keeps whole
        downloaded shards for every process of the machine) and ``cache_dir_bytes`` (its bound, int or a size
        string, default :data:`DISK_CACHE_BYTES`), wrapped in a
        :class:`~shardkit.storage.cache.wrapper.CachedStorage`."""
        options = {k: v for k, v in (storage_options or {}).items() if k not in locate.LOCAL_KEYS}
        store = cls(location.root, options)
        cache_dir = (storage_options or {}).get("cache_dir")
        if cache_dir is None:
            return store
        limit = (storage_options or {}).get("cache_dir_bytes", DISK_CACHE_BYTES)
        return CachedStorage(store, ShardCache(cache_dir, parse_size(limit) if isinstance(limit, str) else int(limit)))

    @property
    def capabilities(self) -> Capabilities:
        """Reads ahead (CRC-checked windows), checks whole members, preloads the set's metadata."""
        return Capabilities(reads_ahead=True, checks_members=True, preloads=True)

    def open_set(self, manifest: str) -> None:
        """Read the manifest, the indexes it lists and the shard sizes at once, in a child process
        (:func:`shardkit.storage.obstore.fetch_metadata`) unless this process already uses obstore; the
        next :meth:`read_bytes` / :meth:`size` of them are served from memory."""
        if locate.used_here():
            self._client()
            objects, sizes, tags = locate.read_metadata(self.url, self.storage_options, manifest)
        else:
            objects, sizes, tags = locate.fetch_metadata(self.url, self.storage_options, manifest)
        self._preloaded.update(objects)
        self._sizes.update(sizes)
        with self._lock:
            for name, tag in tags.items():
                self._tags.setdefault(name, tag)

    def bind_members(self, members: Callable[[str], Members | None] | None) -> None:
        """Where to find a shard's members and CRC-32s (the shard set's index columns); reads inside a
        member are then served from whole, checked members. Not pickled: the shard set binds again."""
        self._members = members

    # -- the Storage interface -------------------------------------------------------------------

    def describe(self, name: str) -> str:
        return self.url + name

    def read_bytes(self, name: str) -> bytes:
        value = self._preloaded.pop(name, None)
        if value is None:
            value = self._get_whole(name)
        if isinstance(value, BaseException):
            raise value
        return value

    def _get_whole(self, name: str) -> bytes:
        store = self._client()
        log.info("fetching %s", self.describe(name))
        try:
            return locate.get_whole(store, name, self.describe(name))
        except OSError as exc:
            if type(exc).__module__.startswith("shardkit") or isinstance(exc, FileNotFoundError):
                raise
            raise locate.storage_error(exc, self.describe(name), storage_options=self.storage_options) from None
        except Exception as exc:
            raise locate.storage_error(exc, self.describe(name), storage_options=self.storage_options) from None

    def size(self, name: str) -> int:
        value = self._sizes.get(name)
        if value is None:
            import obstore

            try:
                meta = obstore.head(self._client(), name)
                value = int(meta["size"])
                with self._lock:
                    self._tags.setdefault(name, meta.get("e_tag"))
            except UsageError:
                raise
            except Exception as exc:
                value = locate.storage_error(exc, self.describe(name), storage_options=self.storage_options)
            self._sizes[name] = value
        if isinstance(value, BaseException):
            raise value
        return value

    def read_into(self, name: str, ranges: Sequence[ByteRange | tuple[int, int, memoryview]]
                  ) -> list[RangeError]:
        self._client()  # raises UsageError in an unsafe fork: not an I/O failure
        changed = self._changed.get(name)
        if changed is not None:
            return [(k, changed) for k in range(len(ranges))]
        errors: dict[int, OSError] = {}
        misses: list[int] = []
        with self._lock:
            for k, (offset, length, dest) in enumerate(ranges):
                w = self._cache.find(name, offset, length)
                if w is None:
                    misses.append(k)
                elif (err := serve(w, offset, length, dest, self.describe(name))) is not None:
                    errors[k] = err
                else:
                    self._cache.served(name, w, offset)
            self.stats["hits"] += len(ranges) - len(misses)
            self.stats["misses"] += len(misses)
        if misses:
            errors.update(self._read_misses(name, ranges, misses))
        return sorted(errors.items())

    def prefetch(self, name: str, extents: Sequence[Extent]) -> None:
        """Fetch these members' windows in the background (up to ``cache_bytes`` of them), CRC-checked,
        into the cache that :meth:`read_into` serves from."""
        if not extents or name in self._changed:
            return
        try:
            self._client()
        except UsageError:
            return  # read_into says so
        budget = self.cache_bytes
        for group in win.plan_windows(sorted(extents)):
            start, end = group[0].offset, group[-1].offset + group[-1].length
            budget -= end - start
            if budget < 0:
                break
            key = (name, start, end)
            with self._lock:
                if key in self._inflight:
                    continue
                cached = self._cache.find(name, start, end - start)
                if cached is not None:
                    self._cache.hint(name, cached, [e.offset for e in group])
                    continue
                future = self._executor().submit(self._fetch_window, name, group, True, True)
                self._inflight[key] = future
            future.add_done_callback(lambda _f, key=key: self._done(key))

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
            pools = [self._pool, self._getters]
            self._pool = self._getters = None
        for pool in pools:
            if pool is not None and self._pid == os.getpid():
                pool.shutdown(wait=False, cancel_futures=True)

    # -- fetching ----------------------------------------------------------------------------------

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="shardkit-prefetch")
        return self._pool

    def stream(self, name: str, write: Callable[[memoryview], None]) -> int:
        """The whole object in one streaming GET (pieces of about 8 MB) on the condition that it is still the
        one whose ETag was recorded (``If-Match``): :class:`ShardChanged` otherwise."""
        tag = self._tags.get(name)
        with self._conditional(name, tag):
            return win.stream_if_match(self._client(), name, tag, write)

    def _get(self, name: str, start: int, end: int) -> Any:
        """Bytes ``[start, end)`` of ``name`` (one ranged GET), on the condition that the object is still the one
        whose ETag was recorded (``If-Match``; the answer's ETag is compared too). Raises :class:`ShardChanged`
        (remembered: later reads of ``name`` fail at once) or the one-line error of the failure."""
        tag = self._tags.get(name)
        self._stall.check()
        with self._conditional(name, tag):
            data, now = win.get_if_match(self._client(), name, start, end, tag)
        if tag is None and now:
            with self._lock:
                self._tags.setdefault(name, now)
        return data

    @contextmanager
    def _conditional(self, name: str, tag: str | None) -> Iterator[None]:
        """Around a GET of ``name`` on ``If-Match: tag``: a :class:`TagMismatch` becomes :class:`ShardChanged`,
        any other failure the one-line storage error (a :class:`UsageError` passes as it is)."""
        try:
            yield
        except UsageError:
            raise
        except TagMismatch:
            raise self._shard_changed(name, tag) from None
        except Exception as exc:
            raise self._stall.note(exc, locate.storage_error(exc, self.describe(name),
                                                             storage_options=self.storage_options)) from None

    def _shard_changed(self, name: str, tag: str | None) -> ShardChanged:
        err = ShardChanged(self.describe(name), f"the shard changed since the set was opened (its ETag was {tag}; "
                           "the object at that name now has another)")
        with self._lock:
            self._changed.setdefault(name, err)
        log.warning("%s", err)
        return err

    def _get_many(self, name: str, spans: Sequence[tuple[int, int]]) -> list[Any]:
        """:meth:`_get` of each ``(start, end)``, concurrently (up to ``max_in_flight``); a failed span gives its
        ``OSError`` in its place."""
        def one(span: tuple[int, int]) -> Any:
            try:
                return self._get(name, *span)
            except OSError as exc:
                return exc

        if len(spans) <= 1:
            return [one(sp) for sp in spans]
        with self._lock:
            if self._getters is None:
                self._getters = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="shardkit-get")
            pool = self._getters
        return list(pool.map(one, spans))

    def _done(self, key: tuple[str, int, int]) -> None:
        with self._lock:
            self._inflight.pop(key, None)

    def _fetch_window(self, name: str, group: list[Extent], cache: bool, prefetch: bool = False) -> Window:
        """GET the members of ``group`` as one range, check each one's CRC-32; cache it if asked."""
        start, end = group[0].offset, group[-1].offset + group[-1].length
        t0 = time.monotonic()
        data = self._get(name, start, end)
        return self._checked(name, group, data, time.monotonic() - t0, cache, prefetch)

    def _checked(self, name: str, group: list[Extent], data: Any, seconds: float, cache: bool,
                 prefetch: bool = False) -> Window:
        start, end = group[0].offset, group[-1].offset + group[-1].length
        kind = "prefetch" if prefetch else "read"
        with self._lock:
            self.stats[kind + "_gets"] += 1
            self.stats[kind + "_bytes"] += len(data)
        if len(data) != end - start:
            raise ShortRead(self.describe(name), len(data), end - start, start)
        view = memoryview(data)
        bad = tuple((e.offset, e.offset + e.length) for e in group
                    if zlib.crc32(view[e.offset - start:e.offset - start + e.length]) != e.crc32)
        if bad:
            log.warning("%s: %d members of bytes %d-%d fail their CRC-32", self.describe(name), len(bad), start, end)
        level = logging.INFO if seconds > SLOW_SECONDS or not self._logged_first else logging.DEBUG
        self._logged_first = True
        log.log(level, "fetched %s bytes %d-%d (%.1f MB, %d members) in %.2f s", self.describe(name), start, end,
                (end - start) / MB, len(group), seconds)
        w = Window(start, end, data, bad)
        if cache:
            with self._lock:
                self._cache.put(name, w, [e.offset for e in group] if prefetch else ())
        return w

    def _read_misses(self, name: str, ranges: Sequence[Any], misses: list[int]) -> dict[int, OSError]:
        """Fill the ranges not in the cache: whole checked members where they are known, else plain
        ranged GETs."""
        members = self._members(name) if self._members is not None else None
        inside: dict[int, int] = {}  # range position -> member number
        if members is not None:
            starts, ends, _ = members
            for k in misses:
                offset, length = ranges[k][0], ranges[k][1]
                m = int(np.searchsorted(starts, offset, side="right")) - 1
                if m >= 0 and offset + length <= ends[m]:
                    inside[k] = m
        errors = self._plain_reads(name, ranges, [k for k in misses if k not in inside])
        if inside:
            errors.update(self._member_reads(name, ranges, inside, members))
        return errors

    def _member_reads(self, name: str, ranges: Sequence[Any], inside: dict[int, int], members: Members
                      ) -> dict[int, OSError]:
        starts, ends, crcs = members
        wanted = sorted(set(inside.values()))
        windows = self._join_prefetch(name, [(int(starts[m]), int(ends[m])) for m in wanted])
        rest = [m for m in wanted if not any(covers(w, starts[m], ends[m]) for w in windows)]
        extents = [Extent(int(starts[m]), int(ends[m] - starts[m]), int(crcs[m])) for m in rest]
        windows += self._fetch_groups(name, win.plan_windows(extents))
        errors: dict[int, OSError] = {}
        for k, m in inside.items():
            offset, length, dest = ranges[k]
            w = next(w for w in windows if covers(w, starts[m], ends[m]))
            if isinstance(w, Failed):
                errors[k] = w.err
            elif (err := serve(w, offset, length, dest, self.describe(name))) is not None:
                errors[k] = err
            else:
                with self._lock:
                    self._cache.served(name, w, offset)
        return errors

    def _join_prefetch(self, name: str, spans: list[tuple[int, int]]) -> list[Window]:
        """The windows covering ``spans`` ((start, end) of members) that are in the cache now or that prefetch
        is fetching (waited for): a read never fetches bytes a second time while their GET is under way. A
        window whose prefetch failed is left out (the read fetches its members again)."""
        found: list[Window] = []
        futures: list[Future[Window]] = []
        with self._lock:
            for a, b in spans:
                if any(covers(w, a, b) for w in found):
                    continue
                w = self._cache.find(name, a, b - a)
                if w is not None:
                    found.append(w)
                    continue
                for (n, s, e), f in self._inflight.items():
                    if n == name and s <= a and b <= e and f not in futures:
                        futures.append(f)
                        break
        for f in futures:
            try:
                found.append(f.result())
            except Exception:  # failed or cancelled: the read fetches these members itself
                continue
            with self._lock:
                self.stats["joined"] += 1
        return found

    def _fetch_groups(self, name: str, groups: list[list[Extent]]) -> list[Any]:
        """Each group's window: waited for if prefetch is fetching it, else fetched now, concurrently
        (:meth:`_get_many`). A failed group gives a :class:`Failed` in its place."""
        out: list[Any] = [None] * len(groups)
        todo = []
        for j, g in enumerate(groups):
            key = (name, g[0].offset, g[-1].offset + g[-1].length)
            with self._lock:
                future = self._inflight.get(key)
            if future is not None:
                try:
                    out[j] = future.result()
                    continue
                except OSError:
                    pass  # fetch it again now
            todo.append(j)
        if not todo:
            return out
        starts = [groups[j][0].offset for j in todo]
        ends = [groups[j][-1].offset + groups[j][-1].length for j in todo]
        t0 = time.monotonic()
        got = self._get_many(name, list(zip(starts, ends)))
        for n, j in enumerate(todo):
            try:
                if isinstance(got[n], OSError):
                    raise got[n]
                out[j] = self._checked(name, groups[j], got[n], time.monotonic() - t0, True)
            except OSError as exc:
                out[j] = Failed(starts[n], ends[n], exc)
        return out

    def _plain_reads(self, name: str, ranges: Sequence[Any], ks: list[int]) -> dict[int, OSError]:
        """Ranges outside known members: neighbours (gaps ≤ ``GAP``) share a GET; checked for length only."""
        if not ks:
            return {}
        spans = win.plain_spans(ranges, ks)
        return win.fill_spans(ranges, ks, spans, self._get_many(name, spans), self.describe(name))

    # -- lifetime ----------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "storage_options": self.storage_options, "cache_bytes": self.cache_bytes,
                "max_in_flight": self.max_in_flight, "tags": dict(self._tags)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._tags = dict(state.pop("tags", {}))
        self.__dict__.update(state)
        self._members = None
        self._reset()

    def __repr__(self) -> str:
        return f"ObjectStorage({self.url!r})"
