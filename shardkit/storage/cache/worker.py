"""The private shard cache that the DataLoader workers of one process share when a set on object storage is
read without ``cache_dir`` (docs/reading.md, "DataLoader workers on object storage").

Why: each worker reads its own members of every shuffle window, and those lie a member apart from the
other workers', so each worker's windows (:mod:`shardkit.storage.windows`) span the others' members too: K
workers fetched K× the set's bytes per epoch. The machine-wide shard cache
(:class:`~shardkit.storage.cache.store.ShardCache`) already downloads each shard once for every process
that reads it (a lock per shard; the others wait and read the verified entry), so the workers of a
process share one of those, made for the process:

- made by the process that opens the set (``tempfile.mkdtemp``: mode 0700, a name nobody can guess,
  under ``$TMPDIR``), before any worker starts, so that every worker (forked or spawned) finds the same
  folder; empty until a worker reads;
- bounded by :func:`default_limit` (half the free space of its disk when made, at most
  :data:`TEMP_CACHE_BYTES`), LRU like any ``cache_dir``;
- removed when that process exits (or the object that owns it is collected) — only by that process,
  never by a worker; a folder left by a process that was killed is removed by the next one that makes its
  own (:func:`sweep_stale`);
- the integrity checks of ``cache_dir``: sha256 and size of each downloaded shard against the manifest
  before the entry exists (an entry that exists is complete and verified), conditional GETs on the ETag
  recorded when the set was opened, sizes checked on every open. What it skips: hashing an entry again
  the first time each process uses it — that guards a shared folder against files planted under an
  entry's name, and only this user's processes can write this one (``ShardCache(private=True)``); a
  second worker would otherwise hash the whole set again each epoch (sha256 runs at ~560 MB/s here).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import weakref
from pathlib import Path

from shardkit.storage.cache.store import ShardCache

log = logging.getLogger(__name__)

__all__ = ["PREFIX", "TEMP_CACHE_BYTES", "default_limit", "private_cache", "sweep_stale"]

#: the most a private cache holds by default (bytes)
TEMP_CACHE_BYTES = 20_000_000_000
#: name of a private cache folder: ``shardkit-shards-<pid of its owner>-<random>``
PREFIX = "shardkit-shards-"
_NAME = re.compile(re.escape(PREFIX) + r"(\d+)-")


def default_limit(folder: str | os.PathLike[str]) -> int:
    """Half the free bytes of ``folder``'s disk now, at most :data:`TEMP_CACHE_BYTES`."""
    st = os.statvfs(folder)
    return int(min(TEMP_CACHE_BYTES, st.f_bavail * st.f_frsize // 2))


def private_cache(owner: object, limit: int | None = None) -> ShardCache:
    """A new, empty :class:`ShardCache` in a private folder under ``$TMPDIR``, removed by this process when
    ``owner`` is collected or the process exits. ``limit``: its bound (default :func:`default_limit`)."""
    base = tempfile.gettempdir()
    sweep_stale(base)
    root = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base)
    cache = ShardCache(root, default_limit(root) if limit is None else limit, private=True)
    weakref.finalize(owner, _remove, root, os.getpid())
    log.debug("DataLoader workers share downloaded shards in %s (at most %d bytes)", root, cache.limit)
    return cache


def _remove(root: str, pid: int) -> None:
    """Remove the private cache ``root`` — in the process that made it only (a forked worker that inherited
    the finalizer leaves it to the others). It is renamed first: at exit this runs before the DataLoader's
    workers are stopped, and a worker still fetching would otherwise create files in it while it is being
    removed (the folder stayed); under the new name (swept like ``root`` if anything is left) it is out of
    their way."""
    if os.getpid() != pid:
        return
    gone = f"{root}.gone"
    try:
        os.rename(root, gone)
    except OSError:
        gone = root
    shutil.rmtree(gone, ignore_errors=True)


def sweep_stale(base: str | os.PathLike[str]) -> None:
    """Remove the private caches under ``base`` of this user whose owner process no longer runs (killed
    before it could remove its own)."""
    for path in Path(base).glob(PREFIX + "*"):
        m = _NAME.match(path.name)
        try:
            st = path.lstat()
        except OSError:
            continue
        if m is None or not path.is_dir() or path.is_symlink() or st.st_uid != os.getuid():
            continue
        if not _running(int(m.group(1))):
            log.info("removing %s: a shard cache left by process %s, which no longer runs", path, m.group(1))
            with contextlib.suppress(OSError):
                shutil.rmtree(path)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
