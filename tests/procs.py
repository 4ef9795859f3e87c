"""Processes as Linux's /proc shows them, for the tests that check no decoding process outlives a pack; the
CLI run as a child process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def _stat_fields(pid: int | str) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name (state first, then the parent pid)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> set[int]:
    """The pids whose parent is ``pid`` now."""
    kids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(_stat_fields(entry)[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                kids.add(int(entry))
    return kids


def alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


def free_port() -> int:
    """A TCP port nothing listens on now, on 127.0.0.1 (a DDP rendezvous for spawned test ranks)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: object, env: dict[str, str] | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    """``shardkit ARGS`` in a child process (``python -m shardkit_cli``), output captured; with ``ok``, its exit
    code must be 0 (the assertion shows what it printed)."""
    proc = subprocess.run([sys.executable, "-m", "shardkit_cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc
