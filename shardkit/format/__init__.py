"""The on-disk format, in code: names, the version constant, the per-shard index
(:class:`ShardIndex`, ``index.py``) and the dataset manifest (:class:`Manifest`, ``manifest.py``).
``docs/format.md`` is the contract this package implements; the data members' codecs are in
:mod:`shardkit.encode`.

``FORMAT_VERSION`` is defined here and nowhere else; it is written into every shard index and every
manifest, and readers refuse versions they do not know with :class:`UnsupportedVersionError`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from shardkit.errors import ManifestError, ShardIndexError, UnsupportedVersionError
from shardkit.files import TMP_SUFFIX

#: Version a plain pack writes into every shard index and manifest (docs/format.md). Version 3 only
#: adds lineage to the manifest, so a set without a parent keeps writing version 2: the same inputs and
#: options give the same bytes as before.
FORMAT_VERSION = 2
#: Version of a manifest with lineage (a set made by ``shardkit update``: ``parent``, ``history``,
#: shard entries held by an ancestor, ``overrides``; docs/format.md §5.1). Its indexes stay version 2.
LINEAGE_VERSION = 3
#: Version of a manifest that lists label layers (``layers``, docs/format.md §5.3) and/or types its metadata
#: columns (``columns``) and keeps its rejects in their own file (``rejects_file`` → ``rejects.json``, §5.4).
#: One version, two optional parts: a reader accepts either or both. Sets with neither keep writing 2 or 3;
#: a plain pack writes 4 only when it has rejects or a column it had to type (cells of mixed types, lists).
LAYERS_VERSION = COLUMNS_VERSION = 4
#: Versions this code reads. Every version ever released stays here (golden fixtures test it).
READABLE_VERSIONS = frozenset({1, 2, 3, 4})
#: the rejects table of a version-4 set (§5.4)
REJECTS_NAME = "rejects.json"
#: the types a version-4 manifest's ``columns`` gives metadata columns (§5.4)
COLUMN_TYPES = ("int", "float", "str", "list")

MANIFEST_NAME = "manifest.json"
PACK_STATE_NAME = "pack-state.json"
SHARD_PREFIX = "shard-"
SHARD_SUFFIX = ".tar"
INDEX_SUFFIX = ".index"
SHARD_DIGITS = 5

TAR_BLOCK = 512
META_EXT = "mp"  # webdataset decodes .mp members with msgpack

#: Keys are the sample's name inside the tar: ``KEY.<data ext>`` + ``KEY.mp`` (msgpack). No dots
#: (webdataset splits the extension at the first dot of the basename), bounded length (ustar name field).
KEY_RE = re.compile(r"^[A-Za-z0-9_\-]+(?:/[A-Za-z0-9_\-]+)*$")
MAX_KEY_LEN = 90

#: Columns every index carries, one entry per sample, in tar order. (The ``wav_*`` names date from
#: version 1; since version 2 they describe the sample's data member whatever its codec.)
INDEX_COLUMNS = (
    "key",          # str
    "wav_offset",   # int: byte offset of the data member (its header)
    "wav_size",     # int: bytes of the data member (header + payload)
    "meta_offset",  # int: byte offset of the .mp (msgpack) member's data
    "meta_size",    # int
    "frames",       # int: frames in the data member (see the codec: samples per channel, spectrogram frames)
    "label",        # int: index of the primary label in the vocabulary, -1 if none
    "secondary",    # list[int]: indices of secondary labels
    "source",       # str: source file, relative to the pack's SRC
    "start",        # int: first frame of this sample in the resampled source recording
    "wav_crc32",    # int: zlib.crc32 of the whole data member
    "meta_crc32",   # int: zlib.crc32 of the .mp (msgpack) member
)


def shard_name(number: int) -> str:
    """``shard-00042.tar`` for shard number 42."""
    return f"{SHARD_PREFIX}{number:0{SHARD_DIGITS}d}{SHARD_SUFFIX}"


def is_shard_name(name: str) -> bool:
    """Whether ``name`` is a shard file name a writer makes (``shard-`` + at least 5 digits + ``.tar``)."""
    digits = name[len(SHARD_PREFIX): -len(SHARD_SUFFIX)]
    return name.startswith(SHARD_PREFIX) and name.endswith(SHARD_SUFFIX) and len(digits) >= SHARD_DIGITS \
        and digits.isascii() and digits.isdigit()


def index_name(shard: str) -> str:
    """``shard-00042.index`` for ``shard-00042.tar``."""
    return shard[: -len(SHARD_SUFFIX)] + INDEX_SUFFIX if shard.endswith(SHARD_SUFFIX) else shard + INDEX_SUFFIX


def check_version(found: Any, what: str, where: str | os.PathLike[str]) -> int:
    """Raise a named error unless ``found`` is a format version this code reads."""
    if not isinstance(found, int) or isinstance(found, bool):
        raise (ManifestError if what == "manifest" else ShardIndexError)(
            f"{where}: {what} has no integer 'format_version'; it was not written by shardkit"
        )
    if found not in READABLE_VERSIONS:
        raise UnsupportedVersionError(
            f"{where}: {what} has format_version {found}, this shardkit reads "
            f"{sorted(READABLE_VERSIONS)}; upgrade shardkit (pip install -U shardkit)"
        )
    return found


def dumps_json(doc: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, fixed separators, trailing newline)."""
    return (json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def manifest_root(path: str | os.PathLike[str]) -> Path:
    """The shard-set folder for a folder or a manifest path."""
    p = Path(path)
    return p if p.is_dir() or p.suffix != ".json" else p.parent


# re-exported: the two documents of the format (imported last: they use the names above)
from shardkit.format.index import ShardIndex  # noqa: E402
from shardkit.format.manifest import Manifest, ShardEntry, load_manifest, version_id  # noqa: E402

__all__ = [
    "COLUMNS_VERSION",
    "COLUMN_TYPES",
    "FORMAT_VERSION",
    "INDEX_COLUMNS",
    "INDEX_SUFFIX",
    "KEY_RE",
    "LAYERS_VERSION",
    "LINEAGE_VERSION",
    "MANIFEST_NAME",
    "MAX_KEY_LEN",
    "META_EXT",
    "PACK_STATE_NAME",
    "READABLE_VERSIONS",
    "REJECTS_NAME",
    "SHARD_DIGITS",
    "SHARD_PREFIX",
    "SHARD_SUFFIX",
    "TAR_BLOCK",
    "TMP_SUFFIX",
    "Manifest",
    "ShardEntry",
    "ShardIndex",
    "check_version",
    "dumps_json",
    "index_name",
    "is_shard_name",
    "load_manifest",
    "manifest_root",
    "shard_name",
    "version_id",
]
