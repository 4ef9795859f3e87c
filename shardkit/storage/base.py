"""The storage layer's seam: byte ranges of named objects, and how a read of them fails.

Every byte shardkit reads — the manifest, the shard indexes, the audio of a batch, one sample's
metadata — goes through a :class:`Storage`. :class:`~shardkit.storage.local.LocalStorage` reads a folder
on the local file system with ``os.preadv``; :class:`~shardkit.storage.object.ObjectStorage`
(S3/GCS/Azure/HTTP) implements the same methods with ranged GETs.

The interface is shaped for both:

- objects are named relative to the shard-set root (``"manifest.json"``, ``"shard-00003.tar"``);
- :meth:`Storage.read_into` takes *all* ranges of one object at once, sorted by offset, so a remote
  implementation can coalesce neighbouring ranges into a few large requests and keep several in flight;
- it fills caller-owned buffers (the rows of a batch) and reports failures per range instead of
  raising, so one bad range costs one sample, and it can run in a reading thread;
- no file descriptors or sessions cross the interface, and a storage pickles to its configuration
  (DataLoader workers rebuild their own handles);
- it is thread-safe: the batch reader's threads call it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from shardkit.storage.safe_open import read_regular

__all__ = ["MAX_OBJECT_BYTES", "ByteRange", "Extent", "OpenFailed", "RangeError", "ShardChanged", "ShortRead",
           "Storage"]

#: Largest object :meth:`LocalStorage.read_bytes` reads (a manifest or an index; an index of a million
#: samples is about 30 MB): a bigger file is refused with :class:`UnsafeFileError` before reading.
MAX_OBJECT_BYTES = 1 << 30


class ByteRange(NamedTuple):
    """Read ``length`` bytes at ``offset`` of an object into ``dest[:length]``."""

    offset: int
    length: int
    dest: memoryview


class Extent(NamedTuple):
    """One whole member of a shard: ``length`` bytes at ``offset`` whose zlib CRC-32 is ``crc32`` (index
    columns ``wav_offset``/``wav_size``/``wav_crc32``, or the ``meta_*`` ones)."""

    offset: int
    length: int
    crc32: int


class ShortRead(OSError):
    """The object ended before a range did: ``got`` of ``wanted`` bytes at ``offset``."""

    def __init__(self, where: str, got: int, wanted: int, offset: int) -> None:
        super().__init__(f"{where}: short read: {got} of {wanted} bytes at offset {offset}")
        self.got, self.wanted, self.offset = got, wanted, offset


class OpenFailed(OSError):
    """An object cannot be opened (missing, no permission): no range of it was read.

    ``where`` is :meth:`Storage.describe` of the object; ``reason`` the system's words for it.
    """

    def __init__(self, where: str, reason: str, errno_: int | None = None) -> None:
        super().__init__(f"{where}: cannot open ({reason})")
        self.where, self.reason, self.errno_ = where, reason, errno_


class ShardChanged(OpenFailed):
    """A shard is no longer the file it was when the set was opened (replaced, truncated or rewritten
    under a running reader): its index no longer describes it, so none of it is read."""


#: What :meth:`Storage.read_into` returns for each range that failed: (its position in the
#: ranges given, the error: :class:`ShortRead`, :class:`OpenFailed` or another ``OSError``).
RangeError = tuple[int, OSError]


@runtime_checkable
class Storage(Protocol):
    """Read access to the objects (files) of one shard set. Thread-safe and picklable."""

    def read_bytes(self, name: str) -> bytes:
        """The whole object ``name``: a regular file of at most :data:`MAX_OBJECT_BYTES` (checked before
        reading; :class:`~shardkit.errors.UnsafeFileError` otherwise)."""
        return read_regular(self.root, name, MAX_OBJECT_BYTES)

    def size(self, name: str) -> int:
        """Bytes of object ``name``; raises ``FileNotFoundError`` when it is missing."""
        ...

    def read_into(self, name: str, ranges: Sequence[ByteRange | tuple[int, int, memoryview]]
                  ) -> list[RangeError]:
        """Fill ``dest[:length]`` of every ``(offset, length, dest)`` range of object ``name``.

        ``ranges`` should be sorted by offset (they may be coalesced). Never raises for an I/O
        failure: returns the failed ranges as ``(position in ranges, error)``, sorted by position;
        the other ranges are filled. A missing object fails every range with :class:`OpenFailed`.
        """
        ...

    def prefetch(self, name: str, extents: Sequence[Extent]) -> None:
        """A hint, returning at once: these whole members of object ``name`` (sorted by offset) will be
        read soon, by :meth:`read_into` ranges inside them. An implementation may read them ahead —
        sequentially, in large requests — and keep them until they are read (within a memory bound it
        documents); one that fetches them MUST check each member's CRC-32 before serving its bytes.
        The batch reader calls it a shuffle window ahead of use. Doing nothing is correct."""
        ...

    def describe(self, name: str) -> str:
        """Where object ``name`` lives, for messages: a path or a URL."""
        ...

    def close(self) -> None:
        """Release what this process holds open (reading again reopens)."""
        ...
