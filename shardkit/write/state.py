"""A pack's crash-safe bookkeeping in OUT: :class:`PackState` (``pack-state.json``, format §7) and
deciding what to do with an existing OUT (start, resume, nothing to do, or refuse).

``pack-state.json`` is rewritten atomically after every finished shard; it says which shards are
done and where the next one starts (source ``next_item``, piece ``next_piece``), so a re-run of the
same command continues there and writes the same bytes.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shardkit.errors import FormatError, OutputConflictError, UsageError
from shardkit.files import atomic_write
from shardkit.format import (
    FORMAT_VERSION,
    INDEX_SUFFIX,
    MANIFEST_NAME,
    PACK_STATE_NAME,
    REJECTS_NAME,
    SHARD_PREFIX,
    SHARD_SUFFIX,
    TMP_SUFFIX,
    Manifest,
    dumps_json,
)
from shardkit.write.lock import LOCK_NAME

log = logging.getLogger(__name__)


@dataclass
class PackState:
    """Where a pack in OUT stands; ``shards`` holds the manifest records of the finished shards."""

    source_fingerprint: str
    pack: dict[str, Any]
    next_item: int = 0            #: the first source not fully in a finished shard
    next_piece: int = 0           #: its first piece not in a finished shard
    shards: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    label_counts: dict[str, int] = field(default_factory=dict)
    sources_packed: int = 0
    complete: bool = False
    format_version: int = FORMAT_VERSION

    @property
    def committed_bytes(self) -> int:
        """Shard + index bytes of the finished shards."""
        return sum(s["bytes"] + s["index_bytes"] for s in self.shards)

    @property
    def samples(self) -> int:
        return sum(s["samples"] for s in self.shards)

    def to_bytes(self) -> bytes:
        """The bytes of ``pack-state.json``."""
        return dumps_json(asdict(self))

    def save(self, out: Path) -> None:
        """Write ``out/pack-state.json`` atomically."""
        atomic_write(out / PACK_STATE_NAME, self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> PackState:
        """Read a state file; :class:`OutputConflictError` (saying to use --overwrite) when unusable."""
        return cls.from_bytes(path.read_bytes(), str(path))

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> PackState:
        """Parse the bytes of a state file read from ``where`` (a path or URL), as :meth:`load`."""
        path = where
        try:
            doc = json.loads(data)
            names = set(cls.__dataclass_fields__)
            state = cls(**{k: v for k, v in doc.items() if k in names})
            if not isinstance(state.shards, list) or not isinstance(state.next_item, int):
                raise TypeError("malformed fields")
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise OutputConflictError(f"{path}: unreadable ({exc}); re-run with --overwrite to start over") from exc
        state.complete = False
        return state


#: the names a pack writes into OUT: shards and indexes (and their temp files), the workers' spill files
_OURS = re.compile(re.escape(SHARD_PREFIX) + r"(?:[0-9]{5,}(?:" + re.escape(SHARD_SUFFIX) + "|"
                   + re.escape(INDEX_SUFFIX) + r")(?:" + re.escape(TMP_SUFFIX) + r")?|spill-[0-9]{8}"
                   + re.escape(TMP_SUFFIX) + r")")


def is_shard_set_file(name: str) -> bool:
    """Whether ``name`` is one of the files a pack writes into OUT (shards, indexes, temp files,
    manifest, state, lock) — by exact pattern, so a user's ``shard-backup.tar`` is not one."""
    return bool(_OURS.fullmatch(name)) or name in (
        MANIFEST_NAME, PACK_STATE_NAME, MANIFEST_NAME + TMP_SUFFIX, PACK_STATE_NAME + TMP_SUFFIX, LOCK_NAME,
        SOURCES_NAME, SOURCES_NAME + TMP_SUFFIX, "sources.json", "sources.json" + TMP_SUFFIX, REJECTS_NAME,
        REJECTS_NAME + TMP_SUFFIX)


def open_state(out: Path, fingerprint: str, *, overwrite: bool, resume: bool | None) -> PackState | None:
    """Decide what to do with ``out``: None = start fresh; a state = continue it (with ``complete``:
    the pack is already done). Raises :class:`OutputConflictError` when OUT holds something else."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder; choose a folder for the shard set")
    names = sorted(n for n in os.listdir(out) if n != LOCK_NAME) if out.is_dir() else []
    foreign = [n for n in names if not is_shard_set_file(n)]
    if overwrite:
        if foreign:
            raise OutputConflictError(
                f"{out}: holds files that are not a shard set ({', '.join(foreign[:3])}); "
                "--overwrite only deletes shardkit's own files: choose an empty folder")
        for n in names:
            if n != LOCK_NAME:
                (out / n).unlink()
        names = []
    if not names:
        if resume:
            raise UsageError(f"{out}: there is no interrupted pack to resume; drop --resume to start one")
        return None
    if foreign:
        raise OutputConflictError(
            f"{out}: is not empty and is not a shardkit shard set ({', '.join(foreign[:3])}); choose an empty folder")
    return _existing_state(out, fingerprint, resume)


def finished_pack(load: Callable[[], Manifest], fingerprint: str, where: str, place: str) -> Manifest:
    """The manifest a finished pack left in OUT (a ``place``: folder, prefix), if it was made from these
    inputs and options; :class:`OutputConflictError` saying what to do otherwise."""
    try:
        doc = load()
    except FormatError as exc:
        raise OutputConflictError(f"{exc}; re-run with --overwrite to start over") from None
    if doc.pack.get("source_fingerprint") != fingerprint:
        raise OutputConflictError(f"{where}: holds a shard set packed from other sources or options; choose "
                                  f"another {place} or add --overwrite to replace it")
    return doc


def _existing_state(out: Path, fingerprint: str, resume: bool | None) -> PackState:
    if (out / PACK_STATE_NAME).exists():
        state = PackState.load(out / PACK_STATE_NAME)
        if state.source_fingerprint != fingerprint:
            raise OutputConflictError(
                f"{out}: holds an unfinished pack of other sources or options; re-run that exact command "
                "to finish it, or add --overwrite to start over")
        return state
    if (out / MANIFEST_NAME).exists():
        doc = finished_pack(lambda: Manifest.load(out), fingerprint, str(out), "folder")
        if resume:
            raise UsageError(f"{out}: the pack is already complete; nothing to resume")
        return PackState(fingerprint, doc.pack, complete=True)
    raise OutputConflictError(
        f"{out}: holds shard files but no manifest or pack state; add --overwrite to start over")


#: (size, mtime_ns) of every source, written once when a pack starts, checked when it resumes
SOURCES_NAME = "pack-sources.json"


def _stamp(path: str) -> list[int]:
    try:
        st = os.stat(path)
    except OSError:
        return [-1, -1]
    return [st.st_size, st.st_mtime_ns]


def save_source_stamps(out: Path, sources: list[tuple[str, str]]) -> None:
    """Record ``(rel, path)`` sources' size and modification time, for :func:`check_source_stamps`."""
    atomic_write(out / SOURCES_NAME, dumps_json({rel: _stamp(path) for rel, path in sources}))


def check_source_stamps(out: Path, sources: list[tuple[str, str]]) -> None:
    """Refuse to resume when a source changed since the interrupted run started (the finished shards
    hold its old audio); a state from before stamps were kept is resumed as it is."""
    try:
        stamps = json.loads((out / SOURCES_NAME).read_bytes())
    except FileNotFoundError:
        return
    except ValueError:
        stamps = {}
    for rel, path in sources:
        if stamps.get(rel) != _stamp(path):
            raise OutputConflictError(
                f"{out}: {rel} changed since the interrupted pack started (size or modification time), so "
                "the shards already written may hold its old audio; re-run with --overwrite to start over")


def clean_unfinished(out: Path, shards_done: int) -> None:
    """Remove temp files and shards past the last recorded one (a crash can leave either)."""
    for name in os.listdir(out):
        if not is_shard_set_file(name) or name == LOCK_NAME:
            continue
        if name.endswith(TMP_SUFFIX):
            (out / name).unlink()
        elif name.startswith(SHARD_PREFIX) and name.endswith((SHARD_SUFFIX, INDEX_SUFFIX)):
            number = int(name[len(SHARD_PREFIX):].split(".")[0])
            if number >= shards_done:
                (out / name).unlink()
    (out / MANIFEST_NAME).unlink(missing_ok=True)
