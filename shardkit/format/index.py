"""The sidecar index of one shard (format §4): :class:`ShardIndex`, zstd-compressed msgpack."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import zstandard

from shardkit import format as fmt
from shardkit.encode.registry import codec_class, codec_id_of
from shardkit.errors import ShardIndexError, UnknownCodecError


def max_index_bytes(compressed: int) -> int:
    """The most bytes an index of ``compressed`` bytes may decompress to (64 MiB + 64 × its size):
    real indexes compress a few times; a zstd bomb is refused instead of exhausting memory."""
    return (64 << 20) + 64 * compressed


def _decompress(data: bytes, where: str | os.PathLike[str]) -> bytes:
    limit = max_index_bytes(len(data))
    declared = zstandard.get_frame_parameters(data).content_size
    if declared != zstandard.CONTENTSIZE_UNKNOWN and declared > limit:
        raise ShardIndexError(f"{where}: shard index declares {declared} bytes uncompressed, more than the "
                              f"{limit} an index of {len(data)} bytes may hold; the file is not a real index")
    parts, size = [], 0
    with zstandard.ZstdDecompressor().stream_reader(data) as reader:
        while size <= limit and (chunk := reader.read(1 << 20)):
            parts.append(chunk)
            size += len(chunk)
    raw = b"".join(parts)
    if size > limit:
        raise ShardIndexError(f"{where}: shard index decompresses to more than {limit} bytes; "
                              "the file is not a real index")
    return raw


@dataclass
class ShardIndex:
    """The sidecar index of one shard (``shard-NNNNN.index``): zstd-compressed msgpack.

    ``columns`` maps each name of :data:`~shardkit.format.INDEX_COLUMNS` (plus the codec's own
    :attr:`~shardkit.encode.Codec.index_columns`) to a list with one entry per sample.
    """

    shard: str
    shard_bytes: int
    shard_sha256: str
    codec: dict[str, Any]
    vocabulary: list[str]
    columns: dict[str, list[Any]]
    format_version: int = fmt.FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.columns["key"])

    def to_bytes(self) -> bytes:
        doc = {
            "format": "shardkit.index",
            "format_version": self.format_version,
            "shard": self.shard,
            "shard_bytes": self.shard_bytes,
            "shard_sha256": self.shard_sha256,
            "codec": self.codec,
            "vocabulary": self.vocabulary,
            "samples": {name: self.columns[name] for name in self.column_names(self.codec)},
            "extra": self.extra,
        }
        raw = msgpack.packb(doc, use_bin_type=True)
        return zstandard.ZstdCompressor(level=10, write_checksum=True).compress(raw)

    @staticmethod
    def column_names(codec: dict[str, Any]) -> tuple[str, ...]:
        """The columns an index with ``codec`` carries: the common ones, then the codec's own."""
        return fmt.INDEX_COLUMNS + tuple(codec_class(codec_id_of(codec)).index_columns)

    @classmethod
    def from_bytes(cls, data: bytes, where: str | os.PathLike[str] = "<index>") -> ShardIndex:
        try:
            raw = _decompress(data, where)
            doc = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        except (zstandard.ZstdError, ValueError, TypeError, msgpack.UnpackException) as exc:  # TypeError: list key
            raise ShardIndexError(f"{where}: shard index is not valid zstd+msgpack ({exc})") from exc
        if not isinstance(doc, dict) or doc.get("format") != "shardkit.index":
            raise ShardIndexError(f"{where}: not a shardkit shard index")
        version = fmt.check_version(doc.get("format_version"), "shard index", where)
        try:
            return cls._from_doc(doc, version)
        except UnknownCodecError as exc:
            raise ShardIndexError(f"{where}: shard index has {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ShardIndexError(f"{where}: shard index is malformed ({exc!r})") from exc

    @classmethod
    def _from_doc(cls, doc: dict[str, Any], version: int) -> ShardIndex:
        codec, samples = doc["codec"], doc["samples"]
        columns = {name: samples[name] for name in cls.column_names(codec)}
        n = len(columns["key"])
        if any(len(v) != n for v in columns.values()):
            raise ValueError("columns differ in length")
        return cls(
            shard=doc["shard"], shard_bytes=doc["shard_bytes"], shard_sha256=doc["shard_sha256"],
            codec=codec, vocabulary=list(doc["vocabulary"]), columns=columns,
            format_version=version, extra=doc.get("extra") or {},
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ShardIndex:
        from shardkit.storage.base import MAX_OBJECT_BYTES
        from shardkit.storage.safe_open import read_regular

        p = Path(path)
        try:
            data = read_regular(p.parent, p.name, MAX_OBJECT_BYTES)  # a regular file, size-capped (§6)
        except FileNotFoundError as exc:
            raise ShardIndexError(f"{path}: shard index is missing; rebuild it from its shard with "
                                  "'shardkit reindex' on the shard set") from exc
        return cls.from_bytes(data, path)
