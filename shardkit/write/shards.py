"""One shard on disk: append samples to ``shard-NNNNN.tar.tmp``, then finish it crash-safely
(fsync, rename, index written the same way). A shard appears under its final name only when whole.

The bytes are written and sha256-hashed by a thread of the writer (both release the GIL for large
buffers), so that they overlap the decoding of the next sources instead of following it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shardkit.encode import meta as meta_codec
from shardkit.encode.base import Codec
from shardkit.files import atomic_write
from shardkit.format import (
    META_EXT,
    TMP_SUFFIX,
    ShardIndex,
    index_name,
    shard_name,
)
from shardkit.write.tar import END_OF_ARCHIVE, member_bytes, member_header, padding

logger = logging.getLogger(__name__)

#: members queued for the writing thread at most (each holds a reference to its bytes, not a copy)
_QUEUE_DEPTH = 32
#: ... and at most this many bytes (beyond one part): 32 long samples of a fast producer (spills read
#: back) held ~150 MB while an fsync ran
_QUEUE_BYTES = 32 << 20
#: the writing thread fsyncs after this many bytes, so that the disk writes overlap the pack and the
#: fsync in finish() has little left to wait for (0.3 s for a 750 MB shard here)
_SYNC_EVERY = 64 << 20


@dataclass(frozen=True)
class EncodedSample:
    """A sample ready to write: member bytes and the index columns that describe it."""

    key: str
    wav: bytes | memoryview
    meta: bytes
    frames: int
    label: int
    secondary: tuple[int, ...]
    source: str
    start: int
    wav_crc32: int
    meta_crc32: int
    ext: str                                        #: the data member's extension (the codec's)
    codec_columns: tuple[tuple[str, Any], ...] = ()  #: the codec's own index columns (name, value)

    @property
    def tar_bytes(self) -> int:
        return member_bytes(len(self.wav)) + member_bytes(len(self.meta))


def encode_sample(codec: Codec, pcm: np.ndarray, *, key: str, label: int, secondary: tuple[int, ...],
                  meta: dict[str, Any], source: str, start: int, device: str = "cpu") -> EncodedSample:
    """Encode int16 ``(frames, channels)`` audio with ``codec`` into a sample ready to write.

    ``meta`` is the sample's metadata map (format §3.2) without the codec's own keys, which are added
    here; ``label``/``secondary`` are label numbers in the vocabulary (-1: no primary label).
    """
    enc = codec.encode(pcm, device=device)
    data = meta_codec.encode({**meta, **dict(enc.meta)})
    return EncodedSample(key=key, wav=enc.data, meta=data, frames=enc.frames, label=label, secondary=secondary,
                         source=source, start=start, wav_crc32=zlib.crc32(enc.data), meta_crc32=zlib.crc32(data),
                         ext=codec.ext, codec_columns=enc.columns)


class ShardWriter:
    """Writes shard ``number`` of a shard set into ``out``."""

    def __init__(self, out: Path, number: int, codec: dict[str, Any], vocabulary: list[str]) -> None:
        self.out = out
        self.number = number
        self.name = shard_name(number)
        self.codec = codec
        self.vocabulary = vocabulary
        self.path = out / self.name
        self.tmp = out / (self.name + TMP_SUFFIX)
        self._sha = hashlib.sha256()
        self._queue: queue.Queue[tuple[bytes | memoryview, ...] | None] = queue.Queue(_QUEUE_DEPTH)
        self._error: BaseException | None = None
        self._queued = 0  #: bytes queued and not yet written
        self._room = threading.Condition()
        self.bytes = 0  #: bytes of the shard so far (queued ones included)
        self.frames = 0
        self.columns: dict[str, list[Any]] = {c: [] for c in ShardIndex.column_names(codec)}
        self._thread = threading.Thread(target=self._drain, name=f"shardkit-{self.name}", daemon=True)
        self._fh = open(self.tmp, "wb")  # closed in finish()/abort()
        try:
            self._thread.start()
        except BaseException:  # interrupted (Ctrl-C, SIGTERM) before anyone holds this writer to abort it
            self._fh.close()
            self.tmp.unlink(missing_ok=True)
            raise

    def __len__(self) -> int:
        return len(self.columns["key"])

    def projected(self, sample: EncodedSample) -> int:
        """Shard size if ``sample`` were added and the shard then closed."""
        return self.bytes + sample.tar_bytes + len(END_OF_ARCHIVE)

    def add(self, s: EncodedSample) -> None:
        wav_off = self._member(f"{s.key}.{s.ext}", s.wav)
        meta_off = self._member(f"{s.key}.{META_EXT}", s.meta)
        c = self.columns
        c["key"].append(s.key)
        c["wav_offset"].append(wav_off)
        c["wav_size"].append(len(s.wav))
        c["meta_offset"].append(meta_off)
        c["meta_size"].append(len(s.meta))
        c["frames"].append(s.frames)
        c["label"].append(s.label)
        c["secondary"].append(list(s.secondary))
        c["source"].append(s.source)
        c["start"].append(s.start)
        c["wav_crc32"].append(s.wav_crc32)
        c["meta_crc32"].append(s.meta_crc32)
        for name, value in s.codec_columns:
            c[name].append(value)
        self.frames += s.frames

    def _member(self, name: str, data: bytes | memoryview) -> int:
        header = member_header(name, len(data))
        offset = self.bytes + len(header)
        self._write(header, data, padding(len(data)))
        return offset

    def _write(self, *parts: bytes | memoryview) -> None:
        if self._error is not None:
            raise self._error
        size = sum(len(p) for p in parts)
        with self._room:
            while self._queued and self._queued + size > _QUEUE_BYTES and self._error is None:
                self._room.wait()
            self._queued += size
        self._queue.put(parts)
        self.bytes += size

    def _drain(self) -> None:
        """The writing thread: write and hash queued parts in order until ``None``; after an error
        keep taking parts (so that ``_write`` never blocks) and leave the error for ``_join``."""
        unsynced = 0
        while (parts := self._queue.get()) is not None:
            if self._error is None:
                try:
                    for p in parts:
                        self._fh.write(p)
                        self._sha.update(p)
                        unsynced += len(p)
                    if unsynced >= _SYNC_EVERY:
                        self._fh.flush()
                        os.fsync(self._fh.fileno())
                        unsynced = 0
                except BaseException as exc:  # re-raised in the caller's thread by _write/_join
                    self._error = exc
            with self._room:
                self._queued -= sum(len(p) for p in parts)
                self._room.notify()

    def _join(self) -> None:
        """Wait until every queued part is written; raise the writing thread's error, if any."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def finish(self) -> dict[str, Any]:
        """Close the archive, make it durable under its final name, write its index; return the
        manifest's record of this shard."""
        self._write(END_OF_ARCHIVE)
        self._join()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self.tmp, self.path)
        index = ShardIndex(
            shard=self.name, shard_bytes=self.bytes, shard_sha256=self._sha.hexdigest(),
            codec=self.codec, vocabulary=self.vocabulary, columns=self.columns,
        )
        data = index.to_bytes()
        atomic_write(self.out / index_name(self.name), data)
        logger.info("wrote %s: %d samples, %d bytes", self.name, len(self), self.bytes)
        return {
            "name": self.name,
            "index": index_name(self.name),
            "samples": len(self),
            "frames": self.frames,
            "bytes": self.bytes,
            "sha256": index.shard_sha256,
            "index_bytes": len(data),
            "index_sha256": hashlib.sha256(data).hexdigest(),
        }

    def abort(self) -> None:
        """Drop the unfinished shard (its temp file)."""
        try:
            self._join()
        except BaseException:
            pass  # the shard is being dropped anyway
        if not self._fh.closed:
            self._fh.close()
        self.tmp.unlink(missing_ok=True)
