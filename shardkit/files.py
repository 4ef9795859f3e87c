"""Crash-safe file writes shared by the stages that write (shards, indexes, manifest, pack state)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

#: Suffix of a file being written; it gets its final name by rename only when complete (format §7).
TMP_SUFFIX = ".tmp"


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via ``path.tmp`` + fsync + rename (+ fsync of the folder), so a
    crash leaves either the old file or the new one, never a torn one."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # disk full, Ctrl-C, SIGTERM: leave no half-written temp file behind
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: what ``stat.S_IFMT`` of a file that is not a regular file is called in messages
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFLNK: "a symbolic link", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def check_output(out: Path, *, force: bool, refuse_inside: Path | None = None) -> None:
    """Refuse to write the user's file ``out`` where that would lose something: its folder must exist,
    it may not lie inside ``refuse_inside`` (a shard set being read), an existing regular file needs
    ``force``, and anything else that exists there (a FIFO, a symlink, a device, a folder) is refused by
    name even with ``force`` — writing would replace that directory entry. Raises :class:`UsageError`."""
    from shardkit.errors import UsageError

    if not out.parent.is_dir():
        raise UsageError(f"{out}: the folder {out.parent} does not exist; create it or choose another path")
    if refuse_inside is not None and out.resolve().is_relative_to(refuse_inside.resolve()):
        raise UsageError(f"{out}: is inside the shard set {refuse_inside}; write the sample elsewhere")
    try:
        mode = os.lstat(out).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise UsageError(f"{out}: is {kind}, not a regular file; shardkit only replaces regular files "
                         "(even with --force): choose another path")
    if not force:
        raise UsageError(f"{out}: exists; pass force=True (--force) to replace it")


def make_folder(folder: Path, what: str = "output folder") -> None:
    """``folder.mkdir(parents=True, exist_ok=True)``, or a :class:`UsageError` naming the folder and why
    it cannot be made (a file in the way, no permission, a read-only or virtual file system)."""
    from shardkit.errors import UsageError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"{folder}: exists and is not a folder; choose another {what}") from None
    except OSError as exc:
        raise UsageError(f"{folder}: cannot create the {what} ({exc.strerror or exc}); choose a folder you can "
                         "write to") from None
