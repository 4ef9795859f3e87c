"""One pack at a time per output folder: an advisory lock on ``OUT/pack.lock``.

The lock is ``flock``-based, so the kernel drops it when the process dies however it dies: a crash
never leaves a lock that blocks the next run (after ``kill -9`` the file stays; it is harmless, and
the next pack takes it over and removes it when it ends).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from shardkit.errors import OutputConflictError, PackError

LOCK_NAME = "pack.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock, as before
    fcntl = None  # type: ignore[assignment]


class PackLock:
    """Hold ``out/pack.lock`` while packing; :class:`OutputConflictError` naming the holder's pid when
    another process holds it."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> PackLock:
        for _ in range(100):  # the file may be removed by a finishing holder between open and flock
            fd = self._open()
            self._lock(fd)
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def _open(self) -> int:
        """The lock file, opened (OUT made first); :class:`PackError` when OUT cannot be written."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise PackError(f"{self.path.parent}: cannot create the output folder or its lock file "
                            f"({exc.strerror or exc}); choose a folder you can write to") from None

    def _lock(self, fd: int) -> None:
        if fcntl is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise OutputConflictError(f"{self.path.parent}: another pack (pid {holder}) is writing this "
                                      "folder; wait for it to finish or stop it, then re-run") from None

    def release(self) -> None:
        """Remove the file and drop the lock (a waiting pack then finds no file, or a new one)."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def __exit__(self, *exc: object) -> None:
        self.release()
