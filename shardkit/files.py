"""Crash-safe file writes shared by the stages that write (shards, indexes, manifest, pack state)."""

from __future__ import annotations

import os
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
