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

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from shardkit.errors import UsageError

if TYPE_CHECKING:
    from shardkit.storage.location import Location

__all__ = ["MAX_OBJECT_BYTES", "ByteRange", "Capabilities", "Extent", "Members", "OpenFailed", "RangeError",
           "ShardChanged", "ShortRead", "Storage"]

#: the pieces :meth:`Storage.stream` hands on (bytes)
STREAM_PIECE = 8 << 20

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

#: the members of a shard: (starts int64, ends int64, crc32s int64), sorted by start
Members = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Capabilities:
    """What a storage does beyond the required methods: declared (zarr's ``supports_*``), never probed.

    The reader asks these instead of looking for attributes: ``reads_ahead`` decides whether the batch
    reader sends :meth:`Storage.prefetch` hints a window ahead; ``checks_members`` whether the shard set
    hands the storage its members' extents and CRC-32s (:meth:`Storage.bind_members`); ``preloads``
    whether :meth:`Storage.open_set` reads the set's metadata ahead; ``local_files`` whether
    :meth:`Storage.local_path` names a file on this machine."""

    reads_ahead: bool = False
    checks_members: bool = False
    preloads: bool = False
    local_files: bool = False


class Storage(ABC):
    """Read access to the objects (files) of one shard set. Thread-safe and picklable.

    Four methods are required (:meth:`read_bytes`, :meth:`size`, :meth:`read_into`, :meth:`describe`);
    the others have defaults that do nothing, and :attr:`capabilities` says which of them a storage
    implements. Every storage passes the contract in ``tests/storage/``."""

    @classmethod
    def from_location(cls, location: Location, storage_options: Mapping[str, Any] | None = None) -> Storage:
        """The storage of ``location`` (the storage table of :mod:`shardkit.storage.location` calls this)."""
        raise UsageError(f"{location}: {cls.__name__} cannot be opened from a location; pass it as storage=")

    @property
    def capabilities(self) -> Capabilities:
        """What this storage does beyond the required methods (default: nothing)."""
        return Capabilities()

    @abstractmethod
    def read_bytes(self, name: str) -> bytes:
        """The whole object ``name`` (a manifest, an index): at most :data:`MAX_OBJECT_BYTES`, checked
        before its body is read (:class:`~shardkit.errors.UnsafeFileError` otherwise); ``FileNotFoundError``
        when it is missing."""

    @abstractmethod
    def size(self, name: str) -> int:
        """Bytes of object ``name``; raises ``FileNotFoundError`` when it is missing. Records the object's
        identity (inode and mtime, ETag): a later read of another object under the name is :class:`ShardChanged`."""

    @abstractmethod
    def read_into(self, name: str, ranges: Sequence[ByteRange | tuple[int, int, memoryview]]
                  ) -> list[RangeError]:
        """Fill ``dest[:length]`` of every ``(offset, length, dest)`` range of object ``name``.

        ``ranges`` should be sorted by offset (they may be coalesced). Never raises for an I/O
        failure: returns the failed ranges as ``(position in ranges, error)``, sorted by position;
        the other ranges are filled. A missing object fails every range (:class:`OpenFailed` or
        ``FileNotFoundError``); a range past the end is a :class:`ShortRead`; an object replaced since its
        identity was recorded fails every range with :class:`ShardChanged`.
        """

    @abstractmethod
    def describe(self, name: str) -> str:
        """Where object ``name`` lives, for messages: a path or a URL."""

    def prefetch(self, name: str, extents: Sequence[Extent]) -> None:  # noqa: B027 - a hint: doing nothing is correct
        """A hint, returning at once: these whole members of object ``name`` (sorted by offset) will be
        read soon, by :meth:`read_into` ranges inside them. An implementation may read them ahead —
        sequentially, in large requests — and keep them until they are read (within a memory bound it
        documents); one that fetches them MUST check each member's CRC-32 before serving its bytes.
        The batch reader calls it a shuffle window ahead of use when :attr:`capabilities` says
        ``reads_ahead``. Doing nothing is correct."""

    def set_readahead(self, mode: str) -> None:  # noqa: B027 - only a local folder has modes
        """Read ahead in ``mode`` (a local folder's ``"fadvise"``, ``"read"`` or ``"off"``); a storage
        without such modes ignores it."""

    def open_set(self, manifest: str) -> None:  # noqa: B027 - nothing to preload by default
        """Called once when a shard set is opened, before its manifest ``manifest`` is read: a storage that
        ``preloads`` reads the manifest, the indexes and the shard sizes here, in one go."""

    def bind_members(self, members: Callable[[str], Members | None] | None) -> None:  # noqa: B027 - optional
        """Where a shard's members and CRC-32s are (the shard set's index columns: ``members(shard)`` →
        ``(starts, ends, crc32s)`` sorted by start, or None): a storage that ``checks_members`` then
        fetches whole members and checks them. Not pickled: the shard set binds again."""

    def stream(self, name: str, write: Callable[[memoryview], None]) -> int:
        """The whole object ``name``, handed to ``write`` in pieces of at most 8 MB, as the object whose
        identity was recorded (:class:`ShardChanged` otherwise); returns the bytes written. Raises what a
        failed read gives (``FileNotFoundError``, :class:`OpenFailed`, :class:`ShortRead`, …). The default
        reads it with :meth:`read_into`; an object store overrides it with one streaming GET."""
        size, done = self.size(name), 0
        buf = memoryview(bytearray(max(1, min(size, STREAM_PIECE))))
        while done < size:
            view = buf[:min(len(buf), size - done)]
            errors = self.read_into(name, [(done, len(view), view)])
            if errors:
                raise errors[0][1]
            write(view)
            done += len(view)
        return done

    def local_path(self, name: str) -> Path | None:
        """The path of object ``name`` on this machine, or None when it has none."""
        return None

    def resident_share(self, names: Sequence[str]) -> float | None:
        """About the share (0..1) of the bytes of ``names`` already in this machine's page cache, or None
        where unknown (object stores; read-ahead modes that do not ask). A reader that finds a set cached
        skips its read-ahead hints for the epoch."""
        return None

    def close(self) -> None:  # noqa: B027 - nothing held by default
        """Release what this process holds open (reading again reopens)."""
