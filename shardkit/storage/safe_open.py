"""Opening a file a shard set names, as a file that may come from anyone (docs/reliability.md): only a
regular file inside the set's folder, never by following a final symlink out of it, never blocking on
a FIFO. :class:`~shardkit.storage.local.LocalStorage` reads every object through here."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from shardkit.errors import UnsafeFileError

#: (st_dev, st_ino, st_size, st_mtime_ns): which file a name was when the set was opened
Identity = tuple[int, int, int, int]

_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFDIR: "a folder", stat.S_IFSOCK: "a socket"}


def open_regular(root: Path, name: str) -> tuple[int, os.stat_result]:
    """A read-only descriptor of the regular file ``root/name`` and its ``fstat``.

    A final symlink is followed only when it resolves inside ``root``; a FIFO, device, socket or
    folder is refused (opened with ``O_NONBLOCK``, so a FIFO without a writer does not hang). Raises
    :class:`UnsafeFileError`, or the ``OSError`` of the open (``FileNotFoundError``, ...).
    """
    path = root / name
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        if exc.errno != errno.ELOOP:  # ELOOP: the name is a symlink (O_NOFOLLOW)
            raise
        fd = os.open(inside(root, path), _FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise not_regular(str(path), st)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_regular(root: Path, name: str, max_bytes: int) -> bytes:
    """The whole regular file ``root/name`` (as :func:`open_regular` opens it), refused with
    :class:`UnsafeFileError` before reading when it is larger than ``max_bytes``."""
    fd, st = open_regular(root, name)
    with open(fd, "rb", buffering=0) as fh:  # closes fd
        if st.st_size > max_bytes:
            raise UnsafeFileError(f"{root / name}: is {st.st_size} bytes, more than the {max_bytes} a manifest "
                                  "or index may have; not read")
        parts, left = [], st.st_size
        while left > 0 and (part := fh.read(left)):
            parts.append(part)
            left -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def stat_regular(root: Path, name: str) -> os.stat_result:
    """``stat`` of the regular file ``root/name`` (the same rules as :func:`open_regular`, nothing opened)."""
    path = root / name
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        st = os.stat(inside(root, path))
    if not stat.S_ISREG(st.st_mode):
        raise not_regular(str(path), st)
    return st


def inside(root: Path, link: Path) -> str:
    """Where the symlink ``link`` leads, when that is a path inside ``root``; else :class:`UnsafeFileError`."""
    target = os.path.realpath(link)
    top = os.path.realpath(root)
    if target == top or os.path.commonpath([top, target]) != top:
        raise UnsafeFileError(f"{link}: is a symlink to {target}, outside the shard set; a shard set's "
                              "files must lie inside its folder")
    return target


def identity(st: os.stat_result) -> Identity:
    """What tells one file from another that replaced it under the same name."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def not_regular(where: str, st: os.stat_result) -> UnsafeFileError:
    kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a file")
    return UnsafeFileError(f"{where}: is {kind}, not a regular file; a shard set holds only regular files. "
                           "Re-download the shard set")
