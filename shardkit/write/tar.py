"""Deterministic POSIX ustar members (format §2): fixed mode/uid/gid/mtime, no PAX headers."""

from __future__ import annotations

import tarfile

from shardkit.format import TAR_BLOCK

#: What closes every archive: two zero blocks.
END_OF_ARCHIVE = b"\0" * (2 * TAR_BLOCK)


def member_header(name: str, size: int) -> bytes:
    """The 512-byte ustar header of a regular file ``name`` holding ``size`` bytes."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict")


def padding(size: int) -> bytes:
    """Zero bytes that bring ``size`` bytes of member data up to a block boundary."""
    return b"\0" * (-size % TAR_BLOCK)


def member_bytes(size: int) -> int:
    """Bytes a member of ``size`` data bytes takes in the archive (header + data + padding)."""
    return TAR_BLOCK + size + (-size % TAR_BLOCK)
