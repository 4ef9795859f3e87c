"""The on-disk format, in code: names, the version constant, and (de)serialisation of the per-shard
index and the dataset manifest. ``docs/format.md`` is the contract this module implements.

``FORMAT_VERSION`` is defined here and nowhere else; it is written into every shard index and every
manifest, and readers refuse versions they do not know with :class:`UnsupportedVersionError`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import zstandard

from shardkit.errors import IndexError_, ManifestError, UnsupportedVersionError

#: Version of the shard/index/manifest layout described in docs/format.md.
FORMAT_VERSION = 2
#: Versions this code reads. Every version ever released stays here (golden fixtures test it).
READABLE_VERSIONS = frozenset({1, 2})

MANIFEST_NAME = "manifest.json"
PACK_STATE_NAME = "pack-state.json"
SHARD_PREFIX = "shard-"
SHARD_SUFFIX = ".tar"
INDEX_SUFFIX = ".index"
TMP_SUFFIX = ".tmp"
SHARD_DIGITS = 5

TAR_BLOCK = 512
WAV_HEADER_BYTES = 44
AUDIO_EXT = "wav"
NPY_EXT = "npy"  # mel-u8 samples (format v2); webdataset and numpy decode .npy members
META_EXT = "mp"  # webdataset decodes .mp members with msgpack
NPY_HEADER_BYTES = 128

#: Codecs of the sample's data member: codec id → (member extension, header bytes before the payload).
CODECS = {"wav16": (AUDIO_EXT, WAV_HEADER_BYTES), "mel-u8": (NPY_EXT, NPY_HEADER_BYTES)}
#: Index columns a codec adds to :data:`INDEX_COLUMNS` (format v2).
CODEC_COLUMNS = {"wav16": (), "mel-u8": ("q_lo", "q_hi")}

#: Keys are the sample's name inside the tar: ``KEY.wav`` + ``KEY.mp`` (msgpack). No dots (webdataset
#: splits the extension at the first dot of the basename), bounded length (ustar name field).
KEY_RE = re.compile(r"^[A-Za-z0-9_\-]+(?:/[A-Za-z0-9_\-]+)*$")
MAX_KEY_LEN = 90

#: Columns every index carries, one entry per sample, in tar order. (The ``wav_*`` names date from
#: version 1; since version 2 they describe the sample's data member whatever its codec.)
INDEX_COLUMNS = (
    "key",          # str
    "wav_offset",   # int: byte offset of the data member (.wav: its RIFF header; .npy: its header)
    "wav_size",     # int: bytes of the data member (header + payload)
    "meta_offset",  # int: byte offset of the .mp (msgpack) member's data
    "meta_size",    # int
    "frames",       # int: frames in the data member (wav16: samples per channel; mel-u8: spectrogram frames)
    "label",        # int: index of the primary label in the vocabulary, -1 if none
    "secondary",    # list[int]: indices of secondary labels
    "source",       # str: source file, relative to the pack's SRC
    "start",        # int: first frame of this sample in the resampled source recording
    "wav_crc32",    # int: zlib.crc32 of the whole data member
    "meta_crc32",   # int: zlib.crc32 of the .mp (msgpack) member
)


def codec_of(audio: dict[str, Any]) -> str:
    """The codec id of a manifest's ``audio`` map (version 1 sets are all ``wav16``)."""
    return str(audio.get("codec", "wav16"))


def seconds_per_frame(audio: dict[str, Any]) -> float:
    """Seconds of audio one stored frame stands for: ``1 / sample_rate`` for wav16, ``hop / sample_rate``
    for mel-u8 (a spectrogram frame every ``hop_length`` samples)."""
    rate = float(audio["sample_rate"])
    if codec_of(audio) == "mel-u8":
        return float(audio["mel"]["hop_length"]) / rate
    return 1.0 / rate


def shard_name(number: int) -> str:
    """``shard-00042.tar`` for shard number 42."""
    return f"{SHARD_PREFIX}{number:0{SHARD_DIGITS}d}{SHARD_SUFFIX}"


def index_name(shard: str) -> str:
    """``shard-00042.index`` for ``shard-00042.tar``."""
    return shard[: -len(SHARD_SUFFIX)] + INDEX_SUFFIX if shard.endswith(SHARD_SUFFIX) else shard + INDEX_SUFFIX


def check_version(found: Any, what: str, where: str | os.PathLike[str]) -> int:
    """Raise a named error unless ``found`` is a format version this code reads."""
    if not isinstance(found, int) or isinstance(found, bool):
        raise (ManifestError if what == "manifest" else IndexError_)(
            f"{where}: {what} has no integer 'format_version'; it was not written by shardkit"
        )
    if found not in READABLE_VERSIONS:
        raise UnsupportedVersionError(
            f"{where}: {what} has format_version {found}, this shardkit reads "
            f"{sorted(READABLE_VERSIONS)}; upgrade shardkit (pip install -U shardkit)"
        )
    return found


@dataclass
class ShardIndex:
    """The sidecar index of one shard (``shard-NNNNN.index``): zstd-compressed msgpack.

    ``columns`` maps each name of :data:`INDEX_COLUMNS` (plus the codec's :data:`CODEC_COLUMNS`) to a
    list with one entry per sample.
    """

    shard: str
    shard_bytes: int
    shard_sha256: str
    codec: dict[str, Any]
    vocabulary: list[str]
    columns: dict[str, list[Any]]
    format_version: int = FORMAT_VERSION
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
        return INDEX_COLUMNS + CODEC_COLUMNS.get(str(codec.get("codec_id", "wav16")), ())

    @classmethod
    def from_bytes(cls, data: bytes, where: str | os.PathLike[str] = "<index>") -> ShardIndex:
        try:
            raw = zstandard.ZstdDecompressor().decompress(data)
            doc = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        except (zstandard.ZstdError, ValueError, msgpack.UnpackException) as exc:
            raise IndexError_(f"{where}: shard index is not valid zstd+msgpack ({exc}); "
                              "re-run pack with --resume to rebuild it, or re-download the shard set") from exc
        if not isinstance(doc, dict) or doc.get("format") != "shardkit.index":
            raise IndexError_(f"{where}: not a shardkit shard index")
        version = check_version(doc.get("format_version"), "shard index", where)
        samples = doc.get("samples")
        try:
            codec = doc["codec"]
            if str(codec.get("codec_id")) not in CODECS:
                raise IndexError_(f"{where}: shard index has codec {codec.get('codec_id')!r}, this shardkit "
                                  f"reads {sorted(CODECS)}; upgrade shardkit (pip install -U shardkit)")
            columns = {name: samples[name] for name in cls.column_names(codec)}
            n = len(columns["key"])
            if any(len(v) != n for v in columns.values()):
                raise ValueError("columns differ in length")
            return cls(
                shard=doc["shard"], shard_bytes=doc["shard_bytes"], shard_sha256=doc["shard_sha256"],
                codec=codec, vocabulary=list(doc["vocabulary"]), columns=columns,
                format_version=version, extra=doc.get("extra") or {},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexError_(f"{where}: shard index is malformed ({exc!r})") from exc

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ShardIndex:
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError as exc:
            raise IndexError_(f"{path}: shard index is missing; run 'shardkit verify' on the shard set") from exc
        return cls.from_bytes(data, path)


def dumps_json(doc: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, fixed separators, trailing newline)."""
    return (json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def load_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``manifest.json`` (``path`` is the file or the shard-set folder)."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    try:
        doc = json.loads(p.read_bytes())
    except FileNotFoundError as exc:
        raise ManifestError(
            f"{p}: no manifest; is this a shard set made by 'shardkit pack'? "
            "(an interrupted pack has none yet: re-run the same pack command to finish it)"
        ) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{p}: manifest is not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != "shardkit.manifest":
        raise ManifestError(f"{p}: not a shardkit manifest (no \"format\": \"shardkit.manifest\")")
    check_version(doc.get("format_version"), "manifest", p)
    for key in ("audio", "shards", "vocabulary", "totals"):
        if key not in doc:
            raise ManifestError(f"{p}: manifest lacks '{key}'")
    return doc


def manifest_root(path: str | os.PathLike[str]) -> Path:
    """The shard-set folder for a folder or a manifest path."""
    p = Path(path)
    return p if p.is_dir() or p.suffix != ".json" else p.parent
