"""Find the shards a derived set uses from its ancestors (format §5.1, docs/versions.md).

A shard entry with an ``origin`` lives in the folder of the version that wrote it. It is looked up by
file name in these roots, in order: the set's own folder, the folder above it (so a parent set that
sits next to the derived one is found), every root of ``search_path``, then every root of the
``SHARDKIT_SEARCH_PATH`` environment variable (``os.pathsep``-separated). In each root a shard may lie
directly (``ROOT/shard-00003.tar``: the root is the parent set) or one folder down
(``ROOT/*/shard-00003.tar``: the root holds set folders, e.g. ``/kaggle/input``).

A file found by name is used only when it is the manifest's: its size must match, its index (next to
it) must name the manifest's sha256, and the shard's own sha256 is computed once per file identity
(device, inode, size, modification time) and remembered in a cache file
(``$SHARDKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/shardkit``, else ``~/.cache/shardkit``; where that
cannot be written, a folder in the temp folder; saving is skipped quietly when that fails too), so the first
open of a derived set reads every parent shard once (~1 GB/s per core) and later opens only stat them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shardkit.errors import IntegrityError, ShardkitError, ShardReadError, UsageError
from shardkit.files import atomic_write
from shardkit.format import Manifest, ShardEntry
from shardkit.storage.location import load_target

log = logging.getLogger(__name__)

SEARCH_ENV = "SHARDKIT_SEARCH_PATH"
CACHE_ENV = "SHARDKIT_CACHE_DIR"
_CACHE_FILE = "verified-shards.json"
_CHUNK = 4 << 20

SearchPath = Sequence[str | os.PathLike[str]] | None

#: name → advice for a missing ancestor's shard (:func:`register_hint`)
_HINTS: dict[str, str | Callable[[Path, str], str | None]] = {}


def search_roots(root: Path, search_path: SearchPath = None) -> list[Path]:
    """The folders searched for ancestors' shards of the set in ``root``, in order (module docstring)."""
    if isinstance(search_path, str | os.PathLike):
        raise UsageError(f"search_path must be a list of folders, got the single path {search_path!r}: "
                         "pass [path]")
    env = [p for p in os.environ.get(SEARCH_ENV, "").split(os.pathsep) if p]
    roots, seen = [], set()
    for p in [root, root.parent, *(search_path or []), *env]:
        path = Path(p).expanduser()
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            roots.append(path)
    return roots


def cache_dir() -> Path:
    """Where verified shard hashes are remembered (module docstring): ``$SHARDKIT_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/shardkit`` or ``~/.cache/shardkit`` when that can be written (a read-only or
    missing home: a folder of this user in the temp folder instead)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    home = os.path.expanduser("~")
    base = os.environ.get("XDG_CACHE_HOME") or (os.path.join(home, ".cache") if home != "~" else "")
    if base and _writable(Path(base) / "shardkit"):
        return Path(base) / "shardkit"
    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    return Path(tempfile.gettempdir()) / f"shardkit-cache-{uid}"


def _writable(path: Path) -> bool:
    """Whether ``path`` is, or could be made as, a writable folder (its nearest existing ancestor is one)."""
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


class _HashCache:
    """sha256 of files by identity (path, device, inode, size, mtime), kept in :func:`cache_dir`."""

    def __init__(self) -> None:
        self.path = cache_dir() / _CACHE_FILE
        try:
            if hasattr(os, "getuid") and self.path.stat().st_uid != os.getuid():
                raise PermissionError("another user's cache")  # e.g. in a shared temp folder: not trusted
            self.known: dict[str, str] = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            self.known = {}
        if not isinstance(self.known, dict):
            self.known = {}
        self.dirty = False

    def sha256(self, path: Path, st: os.stat_result) -> str:
        ident = f"{os.path.realpath(path)}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}"
        got = self.known.get(ident)
        if got is None:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
            got = self.known[ident] = h.hexdigest()
            self.dirty = True
        return got

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps(self.known, sort_keys=True).encode())
        except OSError as exc:  # a read-only home: verified again next time
            log.debug("cannot save %s: %s", self.path, exc)


def _candidates(roots: list[Path], name: str, listing: dict[Path, list[Path]]) -> list[Path]:
    out = []
    for r in roots:
        if r not in listing:
            try:
                listing[r] = sorted(p for p in r.iterdir() if p.is_dir())
            except OSError:
                listing[r] = []
        for folder in [r, *listing[r]]:
            p = folder / name
            if p.is_file():
                out.append(p)
    return out


def _index_names(folder: Path, entry: ShardEntry) -> bool:
    """Whether ``folder`` holds the entry's index and that index names the entry's shard sha256."""
    from shardkit.format import ShardIndex

    try:
        return ShardIndex.load(folder / entry.index).shard_sha256 == entry.sha256
    except Exception:
        return False


def _index_is_the_manifests(folder: Path, entry: ShardEntry) -> bool:
    """Whether the entry's index in ``folder`` has the manifest's ``index_bytes`` and ``index_sha256``: an
    index next to the genuine shard bytes may still be forged (other labels), and the reader reads it."""
    from shardkit.storage.safe_open import read_regular

    try:
        data = read_regular(folder, entry.index, entry.index_bytes + 1)
    except (OSError, ShardkitError):
        return False
    return len(data) == entry.index_bytes and hashlib.sha256(data).hexdigest() == entry.index_sha256


def resolve(root: Path, manifest: Manifest, search_path: SearchPath = None, *, check_index: bool = True
            ) -> dict[str, Path]:
    """Folder of every shard (and its index) of ``manifest`` that an ancestor holds (entries with an ``origin``);
    :class:`ShardReadError` naming the shard and its version when none is found, :class:`IntegrityError`
    when only files with other bytes are. A candidate whose index is not the manifest's (``index_sha256``)
    is skipped for the next one, with a warning (``check_index=False``: accepted, for ``verify`` to report)."""
    entries = [e for e in manifest.shards if e.origin is not None]
    if not entries:
        return {}
    roots, listing, cache, out = search_roots(Path(root), search_path), {}, _HashCache(), {}
    try:
        _hash_likely(entries, roots, listing, cache)
        for e in entries:
            wrong: list[tuple[Path, str]] = []
            for cand in _candidates(roots, e.name, listing):
                st = cand.stat()
                if st.st_size == e.bytes and _index_names(cand.parent, e) and cache.sha256(cand, st) == e.sha256:
                    if not check_index or _index_is_the_manifests(cand.parent, e):
                        out[e.name] = out[e.index] = cand.parent
                        break
                    log.warning("%s: skipped, its index %s is not the one the manifest of %s names (index_sha256); "
                                "looking further", cand, e.index, root)
                    wrong.append((cand, f"has the shard's bytes but another {e.index} (rebuild it with 'shardkit "
                                        f"reindex {cand.parent}' if that is the parent set)"))
                    continue
                wrong.append((cand, "has other bytes"))
            else:
                _missing(e, wrong, roots, root)
    finally:
        cache.save()
    return out


def missing_inherited(root: Path, manifest: Manifest, search_path: SearchPath = None) -> list[str]:
    """Names of the ancestors' shards (entries with an ``origin``) that no searched folder holds at their
    size: a cheap look (no hashing) for summaries such as ``info``; :func:`resolve` is the real check."""
    roots, listing = search_roots(Path(root), search_path), {}
    return [e.name for e in manifest.shards if e.origin is not None
            and not any(c.stat().st_size == e.bytes for c in _candidates(roots, e.name, listing))]


def _hash_likely(entries: list[ShardEntry], roots: list[Path], listing: dict[Path, list[Path]],
                 cache: _HashCache) -> None:
    """Hash, a few files at a time, the first candidate of each entry that has the right size (the
    usual case on a first open: each shard is then found with its sha256 already known)."""
    first = []
    for e in entries:
        for cand in _candidates(roots, e.name, listing):
            st = cand.stat()
            if st.st_size == e.bytes:
                first.append((cand, st))
                break
    with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda c: cache.sha256(*c), first))


def _missing(e: ShardEntry, wrong: list[tuple[Path, str]], roots: list[Path], root: Path) -> None:
    looked = ", ".join(str(r) for r in roots)
    hint = (f"put that set next to {root} or pass the folder holding it in search_path (CLI --search-path, env "
            f"{SEARCH_ENV})")
    hint = next((h for h in (load_target(f)(root, e.origin) for f in _HINTS.values()) if h), hint)
    if wrong:
        (first, why), more = wrong[0], " (and others)" if len(wrong) > 1 else ""
        raise IntegrityError(f"{root}: shard {e.name} of version {e.origin} not found with its bytes (sha256 "
                             f"{e.sha256[:16]}…, {e.bytes} bytes): {first}{more} {why}; get the set of version "
                             f"{e.origin} unchanged and {hint}")
    raise ShardReadError(f"{root}: shard {e.name} of version {e.origin} not found (looked in {looked}); {hint}")


def register_hint(name: str, hint: str | Callable[[Path, str], str | None]) -> None:
    """Ask ``hint`` (a callable or ``"module:function"``, loaded on first use) what to do when an ancestor's
    shard is not found: ``hint(root of the derived set, the shard's version id)`` → advice, or None when it
    has none (shardkit registers :func:`shardkit.kaggle.notebook.missing_parent_hint`)."""
    _HINTS[name] = hint
