"""The dataset manifest (format §5): :class:`Manifest`, its shard entries and its content version id.

``manifest.json`` is written last by a pack and read first by every reader. This module is the one
place that turns it into typed values and back; a missing or malformed key is a
:class:`~shardkit.errors.ManifestError` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shardkit import format as fmt
from shardkit._version import __version__
from shardkit.encode.base import Codec
from shardkit.encode.registry import get_codec
from shardkit.errors import FormatError, ManifestError, ShardkitError
from shardkit.files import atomic_write

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,254}")


def is_plain_name(name: str) -> bool:
    """A file name a manifest may list: letters, digits, ``.``, ``_``, ``-``, not starting with a dot —
    no folder, no ``..``, nothing that could name a file outside the shard set (format §5)."""
    return bool(_PLAIN_NAME.fullmatch(name))


def version_id(audio: dict[str, Any], layout: dict[str, Any], vocabulary: list[str],
               shard_hashes: list[str]) -> str:
    """``sk1-`` + 16 hex digits of sha256 over the content that defines the data: equal data ⇔ equal id."""
    canon = json.dumps(
        {"format_version": fmt.FORMAT_VERSION, "audio": audio, "layout": layout,
         "vocabulary": vocabulary, "shards": shard_hashes},
        sort_keys=True, separators=(",", ":"),
    )
    return "sk1-" + hashlib.sha256(canon.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ShardEntry:
    """One shard as the manifest lists it (every key REQUIRED, format §5)."""

    name: str           #: the shard file, e.g. ``shard-00000.tar``
    index: str          #: its index file
    samples: int
    frames: int         #: stored frames of all its samples
    bytes: int          #: size of the shard file
    sha256: str         #: of the shard file
    index_bytes: int
    index_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, doc: Any) -> ShardEntry:
        if not isinstance(doc, dict):
            raise TypeError(f"a shard entry must be a map, got {doc!r:.80}")
        ints = {"samples", "frames", "bytes", "index_bytes"}
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in doc:
                raise KeyError(f"shard entry {doc.get('name', '?')!r} lacks {f.name!r}")
            value = doc[f.name]
            ok = isinstance(value, int) and not isinstance(value, bool) if f.name in ints else isinstance(value, str)
            if not ok:
                raise TypeError(f"shard entry {doc.get('name', '?')!r}: {f.name!r} is {value!r:.80}")
            values[f.name] = value
        for key in ("name", "index"):
            if not is_plain_name(values[key]):
                raise ValueError(f"shard entry {key} {values[key]!r} is not a plain file name inside the shard set")
        if min(values[k] for k in ints) < 0:
            raise ValueError(f"shard entry {values['name']!r} has a negative count or size")
        return cls(**values)


@dataclass
class Manifest:
    """``manifest.json``: what a shard set holds and how to check it (format §5).

    ``audio`` is the codec's :meth:`~shardkit.encode.Codec.audio_doc`; ``layout`` says how samples were
    cut (``mode`` recordings or segments); ``pack`` holds the options that made the set and
    ``budget`` how a disk budget ended it. ``totals`` is derived from ``shards`` when a writer builds
    the manifest (:meth:`build`) and read as stored otherwise.
    """

    audio: dict[str, Any]
    layout: dict[str, Any]
    vocabulary: list[str]
    shards: list[ShardEntry]
    totals: dict[str, Any]
    version_id: str
    complete: bool = True
    label_counts: dict[str, int] = field(default_factory=dict)
    pack: dict[str, Any] = field(default_factory=dict)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    budget: dict[str, Any] = field(default_factory=dict)
    format_version: int = fmt.FORMAT_VERSION
    shardkit_version: str = __version__
    #: where it was read from, for messages (not part of the document)
    where: str = field(default=fmt.MANIFEST_NAME, compare=False, repr=False)

    # -- building (writers) -------------------------------------------------------------------------

    @classmethod
    def build(cls, *, codec: Codec, layout: dict[str, Any], vocabulary: list[str], shards: list[ShardEntry],
              label_counts: dict[str, int], pack: dict[str, Any], rejects: list[dict[str, Any]], sources: int,
              sources_packed: int, complete: bool, budget: dict[str, Any]) -> Manifest:
        """A new manifest for ``shards``: totals and the version id are derived from them."""
        audio = codec.audio_doc()
        frames = sum(s.frames for s in shards)
        seconds = frames * codec.seconds_per_frame
        totals = {
            "samples": sum(s.samples for s in shards), "frames": frames,
            "seconds": round(seconds, 6), "hours": round(seconds / 3600, 6),
            "bytes": sum(s.bytes + s.index_bytes for s in shards),
            "sources": sources, "sources_packed": sources_packed,
        }
        return cls(audio=audio, layout=layout, vocabulary=list(vocabulary), shards=list(shards), totals=totals,
                   version_id=version_id(audio, layout, vocabulary, [s.sha256 for s in shards]),
                   complete=complete, label_counts={k: label_counts[k] for k in sorted(label_counts)},
                   pack=pack, rejects=rejects, budget=budget)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (format §5)."""
        return {
            "format": "shardkit.manifest", "format_version": self.format_version,
            "shardkit_version": self.shardkit_version, "version_id": self.version_id,
            "complete": self.complete, "audio": self.audio, "layout": self.layout,
            "vocabulary": self.vocabulary, "label_counts": self.label_counts,
            "shards": [s.to_dict() for s in self.shards], "totals": self.totals,
            "pack": self.pack, "rejects": self.rejects, "budget": self.budget,
        }

    def to_json(self) -> bytes:
        """Deterministic JSON bytes (sorted keys)."""
        return fmt.dumps_json(self.to_dict())

    def save(self, out: Path) -> Path:
        """Write ``out/manifest.json`` crash-safely; return its path."""
        path = Path(out) / fmt.MANIFEST_NAME
        atomic_write(path, self.to_json())
        return path

    # -- reading ------------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, data: bytes, where: str | os.PathLike[str] = "<manifest>") -> Manifest:
        """Parse and check a manifest; raises :class:`ManifestError` (or
        :class:`~shardkit.errors.UnsupportedVersionError`) naming ``where`` and what is wrong."""
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{where}: manifest is not valid JSON ({exc}); re-download the shard set, "
                                "or re-pack it") from exc
        if not isinstance(doc, dict) or doc.get("format") != "shardkit.manifest":
            raise ManifestError(f"{where}: not a shardkit manifest (no \"format\": \"shardkit.manifest\")")
        version = fmt.check_version(doc.get("format_version"), "manifest", where)
        for key in ("audio", "layout", "vocabulary", "shards", "totals", "version_id"):
            if key not in doc:
                raise ManifestError(f"{where}: manifest lacks '{key}'")
        try:
            manifest = cls._from_doc(doc, version)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"{where}: manifest is malformed ({exc.args[0] if exc.args else exc!r})") from exc
        manifest.where = str(where)
        return manifest

    @classmethod
    def _from_doc(cls, doc: dict[str, Any], version: int) -> Manifest:
        maps = {k: doc.get(k, {}) for k in ("audio", "layout", "totals", "label_counts", "pack", "budget")}
        for key, value in maps.items():
            if not isinstance(value, dict):
                raise TypeError(f"'{key}' must be a map")
        vocabulary, rejects = doc["vocabulary"], doc.get("rejects", [])
        if not isinstance(vocabulary, list) or not all(isinstance(v, str) for v in vocabulary):
            raise TypeError("'vocabulary' must be a list of label names")
        if not isinstance(doc["shards"], list) or not isinstance(rejects, list):
            raise TypeError("'shards' and 'rejects' must be lists")
        shards = [ShardEntry.from_dict(e) for e in doc["shards"]]
        names = [s.name for s in shards] + [s.index for s in shards]
        if len(set(names)) != len(names):
            raise ValueError("a shard or index file is listed twice")
        return cls(shards=shards, vocabulary=list(vocabulary),
                   version_id=str(doc["version_id"]), complete=bool(doc.get("complete", True)), rejects=rejects,
                   format_version=version, shardkit_version=str(doc.get("shardkit_version", "")), **maps)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read ``manifest.json`` (``path`` is the file or the shard-set folder)."""
        p = Path(path)
        if p.is_dir():
            p = p / fmt.MANIFEST_NAME
        from shardkit.read.safe_open import read_regular
        from shardkit.read.storage import MAX_OBJECT_BYTES

        # a regular file, size-capped (§6)
        return cls.fetch(lambda: read_regular(p.parent, p.name, MAX_OBJECT_BYTES), p)

    @classmethod
    def fetch(cls, read: Callable[[], bytes], where: str | os.PathLike[str]) -> Manifest:
        """Parse the manifest that ``read()`` returns; a missing or unreadable one is a
        :class:`ManifestError` naming ``where`` and what to do (every reader of a manifest comes here)."""
        try:
            data = read()
        except ShardkitError:
            raise
        except FileNotFoundError as exc:
            raise ManifestError(
                f"{where}: no manifest; is this a shard set made by 'shardkit pack'? "
                "(an interrupted pack has none yet: re-run the same pack command to finish it)"
            ) from exc
        except OSError as exc:
            raise ManifestError(f"{where}: cannot read the manifest ({exc.strerror or exc})") from exc
        return cls.from_json(data, where)

    # -- derived ------------------------------------------------------------------------------------

    @property
    def codec(self) -> Codec:
        """The codec of the set's data members (from ``audio``); :class:`ManifestError` if unusable."""
        try:
            return get_codec(self.audio)
        except FormatError as exc:
            raise ManifestError(f"{self.where}: {exc}") from None

    @property
    def samples(self) -> int:
        return sum(s.samples for s in self.shards)

    @property
    def mode(self) -> str:
        """``"recordings"`` or ``"segments"`` (``layout.mode``)."""
        return str(self.layout.get("mode", "segments"))


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and check ``manifest.json`` (``path`` is the file or the shard-set folder)."""
    return Manifest.load(path)
