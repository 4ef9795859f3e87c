"""Walk a shard's tar headers as its bytes stream past (docs/format.md §2): every member's name, type,
size, data offset and CRC-32, and every way the archive breaks the spec — header checksum, ustar magic,
a member that is not a regular file, a name that leads out of the folder it is extracted to, the
end-of-archive blocks. ``verify`` holds the result against the index; ``reindex`` builds an index from it.

The bytes come as an iterator of chunks (any sizes), read once: memory stays at one chunk plus the
members asked for (``keep``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from shardkit.format import TAR_BLOCK

#: a kept member (``keep``) larger than this is not kept (a ``.mp`` member is a few hundred bytes)
MAX_KEPT_BYTES = 16 << 20
_ZERO = bytes(TAR_BLOCK)
_TYPES = {b"1": "a hard link", b"2": "a symlink", b"3": "a character device", b"4": "a block device",
          b"5": "a folder", b"6": "a FIFO", b"7": "a contiguous file", b"x": "a PAX header", b"g": "a PAX header",
          b"L": "a GNU long name", b"K": "a GNU long link name", b"\0": "an old-style (pre-POSIX) file"}


class Member(NamedTuple):
    """One tar member: its name, typeflag, data ``size``, the ``offset`` of its data, the CRC-32 of its
    data, and the data itself when it was asked for."""

    name: str
    typeflag: bytes
    size: int
    offset: int
    crc32: int
    data: bytes | None = None


@dataclass
class TarScan:
    """What :func:`scan_tar` found: the members in order, problems as ``(offset, member name, what)``,
    and ``reached``: how far the walk got (bytes; members past it are unknown when it stopped early)."""

    members: list[Member] = field(default_factory=list)
    problems: list[tuple[int, str, str]] = field(default_factory=list)
    reached: int = 0
    ended: bool = False  #: the end-of-archive blocks were found


class _Stream:
    """Sequential reads over an iterator of chunks, counting the offset."""

    def __init__(self, chunks: Iterator[bytes | memoryview]) -> None:
        self._chunks, self._buf, self._at, self.pos = chunks, memoryview(b""), 0, 0

    def _more(self) -> bool:
        for chunk in self._chunks:
            if len(chunk):
                self._buf, self._at = memoryview(chunk), 0
                return True
        return False

    def take(self, n: int, crc: int = 0, keep: bool = False) -> tuple[int, int, bytes | None]:
        """Consume ``n`` bytes: (bytes got, their CRC-32 continuing ``crc``, the bytes when ``keep``)."""
        got, parts = 0, []
        while got < n:
            if self._at >= len(self._buf) and not self._more():
                break
            piece = self._buf[self._at:self._at + n - got]
            crc = zlib.crc32(piece, crc)
            if keep:
                parts.append(bytes(piece))
            self._at += len(piece)
            got += len(piece)
        self.pos += got
        return got, crc, b"".join(parts) if keep else None

    def read(self, n: int) -> bytes:
        return self.take(n, keep=True)[2] or b""

    def drain(self) -> int:
        """Consume the rest; return its length, negative when it holds a non-zero byte."""
        rest, nonzero = 0, False
        while True:
            if self._at >= len(self._buf) and not self._more():
                break
            piece = self._buf[self._at:]
            nonzero = nonzero or bool(piece.tobytes().strip(b"\0"))
            rest += len(piece)
            self._at = len(self._buf)
        self.pos += rest
        return -rest if nonzero else rest


def _octal(field_: bytes) -> int | None:
    text = field_.replace(b"\0", b" ").strip()
    if not text or not all(48 <= c <= 55 for c in text):
        return None
    return int(text, 8)


def parse_header(block: bytes) -> tuple[str, bytes, int | None, list[str]]:
    """(name, typeflag, size or None when unreadable, problems) of one 512-byte ustar header."""
    problems = []
    stored = _octal(block[148:156])
    actual = sum(block[:148]) + 8 * 32 + sum(block[156:])
    if stored != actual:
        problems.append("header checksum is wrong (the header is damaged)")
    if block[257:263] != b"ustar\0" or block[263:265] != b"00":
        problems.append("header is not POSIX ustar")
    try:
        name = block[:100].split(b"\0", 1)[0].decode("utf-8")
        prefix = block[345:500].split(b"\0", 1)[0].decode("utf-8")
    except UnicodeDecodeError:
        name, prefix = block[:100].split(b"\0", 1)[0].decode("utf-8", "replace"), ""
        problems.append("member name is not UTF-8")
    name = f"{prefix}/{name}" if prefix else name
    typeflag = block[156:157]
    if typeflag != b"0":
        problems.append(f"member is {_TYPES.get(typeflag, f'of type {typeflag!r}')}, not a regular file")
    parts = name.split("/")
    if not name or name.startswith("/") or ".." in parts or "\\" in name:
        problems.append("member name leads outside the folder it is extracted to (absolute, '..' or empty)")
    return name, typeflag, _octal(block[124:136]), problems


def scan_tar(chunks: Iterator[bytes | memoryview], keep: Callable[[str], bool] = lambda name: False) -> TarScan:
    """Walk the archive whose bytes ``chunks`` yields (all of them are consumed, also after a break)."""
    s, out = _Stream(chunks), TarScan()
    while True:
        start = s.pos
        block = s.read(TAR_BLOCK)
        if len(block) < TAR_BLOCK:
            out.problems.append((start, "", "archive ends without its two end-of-archive blocks (truncated?)"))
            break
        if block == _ZERO:
            out.ended = _end(s, start, out)
            break
        name, typeflag, size, problems = parse_header(block)
        out.problems += [(start, name, p) for p in problems]
        if size is None:
            out.problems.append((start, name, "header size is unreadable: the members after it cannot be found"))
            break
        kept = keep(name) and size <= MAX_KEPT_BYTES
        got, crc, data = s.take(size, keep=kept)
        if got < size:
            out.problems.append((start, name, f"archive ends inside member {name!r} (truncated?)"))
            break
        out.members.append(Member(name, typeflag, size, start + TAR_BLOCK, crc, data))
        s.take(-size % TAR_BLOCK)
        out.reached = s.pos
    out.reached = max(out.reached, s.pos) if out.ended else out.reached
    s.drain()
    return out


def _end(s: _Stream, start: int, out: TarScan) -> bool:
    """After a zero block: the second one, then nothing (format §2: no padding to a record size)."""
    second = s.read(TAR_BLOCK)
    if second != _ZERO:
        out.problems.append((start, "", "a zero block inside the archive is not followed by a second one "
                                        "(damaged or not an end-of-archive)"))
        return False
    rest = s.drain()
    if rest < 0:  # zero padding to a record size (other tar writers) is harmless; data hidden there is not
        out.problems.append((s.pos + rest, "", f"{-rest} bytes that are not zeros follow the end-of-archive "
                                               "blocks"))
    return True
