"""The dataset manifest (format §5): :class:`Manifest`, its shard entries and its content version id.

``manifest.json`` is written last by a pack and read first by every reader. This module is the one
place that turns it into typed values and back; a missing or malformed key is a
:class:`~shardkit.errors.ManifestError` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shardkit import format as fmt
from shardkit._version import __version__
from shardkit.encode.base import Codec
from shardkit.encode.registry import get_codec
from shardkit.errors import FormatError, ManifestError, ShardkitError
from shardkit.files import atomic_write
from shardkit.format.layers import LayerEntry

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,254}")


def is_plain_name(name: str) -> bool:
    """A file name a manifest may list: letters, digits, ``.``, ``_``, ``-``, not starting with a dot —
    no folder, no ``..``, nothing that could name a file outside the shard set (format §5)."""
    return bool(_PLAIN_NAME.fullmatch(name))


log = logging.getLogger(__name__)

def version_id(audio: dict[str, Any], layout: dict[str, Any], vocabulary: list[str],
               shard_hashes: list[str], lineage: dict[str, Any] | None = None) -> str:
    """``sk1-`` + 16 hex digits of sha256 over the content that defines the data: equal data ⇔ equal id.

    ``lineage``: what else decides the samples of a set made by ``update`` (its ``overrides`` and the
    vocabularies its ancestors' shards are numbered in, where they differ from its own); empty parts
    are left out, so a derived set with nothing overridden has the id of a plain set with its shards.
    Parents, history and notes never enter the id (format §5.1).
    """
    doc = {"format_version": fmt.FORMAT_VERSION, "audio": audio, "layout": layout,
           "vocabulary": vocabulary, "shards": shard_hashes}
    doc.update({k: v for k, v in (lineage or {}).items() if v})
    canon = json.dumps(doc, sort_keys=True, separators=(",", ":"))
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
    #: version id of the ancestor whose pack wrote the shard (it lives in that set's folder, format
    #: §5.1); None: the file is in this set's folder
    origin: str | None = None

    def to_dict(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        if self.origin is None:
            del doc["origin"]
        return doc

    @classmethod
    def from_dict(cls, doc: Any) -> ShardEntry:
        if not isinstance(doc, dict):
            raise TypeError(f"a shard entry must be a map, got {doc!r:.80}")
        ints = {"samples", "frames", "bytes", "index_bytes"}
        values = {}
        for f in dataclasses.fields(cls):
            if f.name == "origin":
                origin = doc.get("origin")
                if origin is not None and not isinstance(origin, str):
                    raise TypeError(f"shard entry {doc.get('name', '?')!r}: 'origin' is {origin!r:.80}")
                values["origin"] = origin
                continue
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
    #: lineage (format version 3, §5.1): the parent's version id, the chain's history, tombstones and
    #: relabels, the vocabulary of each ancestor whose shards are used, and the sources table's file
    parent: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    vocabularies: dict[str, list[str]] = field(default_factory=dict)
    sources: dict[str, Any] = field(default_factory=dict)
    #: label layers (format version 4, §5.3), in name order: their files lie next to the manifest
    layers: list[LayerEntry] = field(default_factory=list)
    #: version 4 (§5.4): the type of each metadata column (``extra``), and the rejects' own file
    #: (``rejects`` holds them in memory; a version-4 document names ``rejects.json`` instead)
    columns: dict[str, str] | None = None  #: None: not recorded (versions 1-3, or a version-4 set without them)
    rejects_file: dict[str, Any] | None = None
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
            "pack": self.pack, "budget": self.budget,
            **({"rejects": self.rejects} if not self.typed else
               {"columns": self.columns, "rejects_file": self.rejects_ref()}),
            **(self.lineage_doc() if self.format_version >= fmt.LINEAGE_VERSION else {}),
            **({"layers": [e.to_dict() for e in self.layers]} if self.layers else {}),
        }

    def rejects_bytes(self) -> bytes:
        """The bytes of ``rejects.json`` (§5.4): the rejects of a version-4 set."""
        return fmt.dumps_json({"format": "shardkit.rejects", "format_version": 1, "rejects": self.rejects})

    def rejects_ref(self) -> dict[str, Any] | None:
        """The ``rejects_file`` entry of a version-4 document: name, count, bytes, sha256 (null: none)."""
        if not self.rejects:
            return None if self.rejects_file is None or not self.rejects_file.get("count") else self.rejects_file
        data = self.rejects_bytes()
        return {"name": fmt.REJECTS_NAME, "count": len(self.rejects), "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest()}

    @property
    def typed(self) -> bool:
        """Whether the document types its columns and keeps its rejects in their own file (§5.4): a
        version-4 manifest with ``columns`` (version 4 also carries label layers, which need neither)."""
        return self.format_version >= fmt.COLUMNS_VERSION and self.columns is not None

    @property
    def reject_count(self) -> int:
        """Sources not packed: the rejects listed, or (a version-4 set read without its rejects file) counted."""
        return len(self.rejects) or int((self.rejects_file or {}).get("count", 0))

    def lineage_doc(self) -> dict[str, Any]:
        """The keys format version 3 adds (§5.1)."""
        return {"parent": self.parent, "history": self.history, "overrides": self.overrides,
                "vocabularies": self.vocabularies, "sources": self.sources}

    def content_id(self) -> str:
        """The version id this manifest's content gives (:func:`version_id`). Tombstones count under the
        shard names a pack writes (``.tar``), so a publishing layout that renames the shards
        (``shard-NNNNN.shard``, format "Shard file names and publishing layouts") keeps the id."""
        ancestors = sorted({json.dumps(v) for v in self.vocabularies.values() if v != self.vocabulary})
        overrides = {k: v for k, v in self.overrides.items() if v}
        if overrides.get("removed"):
            overrides["removed"] = {_written_name(k): v for k, v in overrides["removed"].items()}
        layers = [[e.name, e.sha256] for e in sorted(self.layers, key=lambda e: e.name)]
        return version_id(self.audio, self.layout, self.vocabulary, [s.sha256 for s in self.shards],
                          {"overrides": overrides, "vocabularies": ancestors, "layers": layers})

    def to_json(self) -> bytes:
        """Deterministic JSON bytes (sorted keys)."""
        return fmt.dumps_json(self.to_dict())

    def save(self, out: Path) -> Path:
        """Write ``out/manifest.json`` crash-safely (a version-4 set's ``rejects.json`` first); return its path."""
        if self.typed and self.rejects:
            atomic_write(Path(out) / fmt.REJECTS_NAME, self.rejects_bytes())
        path = Path(out) / fmt.MANIFEST_NAME
        atomic_write(path, self.to_json())
        return path

    def with_columns(self, columns: dict[str, str], coerced: Sequence[str]) -> Manifest:
        """This manifest as a pack writes it given its CSV's column types: version 4 (§5.4) when it has
        rejects or ``coerced`` columns, else unchanged (version 2 bytes as before)."""
        if self.format_version != fmt.FORMAT_VERSION or not (self.rejects or coerced):
            return self  # a derived (version-3) set keeps its rejects inline, as before
        return dataclasses.replace(self, format_version=fmt.COLUMNS_VERSION, columns=dict(columns))

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
        lineage = _lineage_from_doc(doc, shards) if version >= fmt.LINEAGE_VERSION else {}
        if version >= fmt.LAYERS_VERSION and "layers" in doc:
            lineage["layers"] = _layers_from_doc(doc, names)
        typed = _columns_from_doc(doc) if version >= fmt.COLUMNS_VERSION else {}
        return cls(shards=shards, vocabulary=list(vocabulary),
                   version_id=str(doc["version_id"]), complete=bool(doc.get("complete", True)), rejects=rejects,
                   format_version=version, shardkit_version=str(doc.get("shardkit_version", "")), **maps, **lineage,
                   **typed)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read ``manifest.json`` (``path`` is the file or the shard-set folder)."""
        p = Path(path)
        if p.is_dir():
            p = p / fmt.MANIFEST_NAME
        from shardkit.storage.base import MAX_OBJECT_BYTES
        from shardkit.storage.safe_open import read_regular

        # a regular file, size-capped (§6)
        manifest = cls.fetch(lambda: read_regular(p.parent, p.name, MAX_OBJECT_BYTES), p)
        if manifest.rejects_file:
            manifest.rejects = manifest.load_rejects(lambda name: read_regular(p.parent, name, MAX_OBJECT_BYTES))
        return manifest

    def load_rejects(self, read: Callable[[str], bytes]) -> list[dict[str, Any]]:
        """The rejects a version-4 manifest keeps in ``rejects.json`` (``read(name)`` its bytes), checked by
        size and sha256; ``[]`` with a warning when it is missing or differs (the set reads without it)."""
        ref = self.rejects_file or {}
        try:
            data = read(str(ref["name"]))
            if len(data) != ref["bytes"] or hashlib.sha256(data).hexdigest() != ref["sha256"]:
                raise ValueError("its size or sha256 differs from the manifest's")
            rejects = json.loads(data)["rejects"]
            if not isinstance(rejects, list) or not all(isinstance(r, dict) for r in rejects):
                raise ValueError("'rejects' is not a list of maps")
        except (OSError, ValueError, KeyError, TypeError, ShardkitError) as exc:
            log.warning("%s: cannot read the rejects file %s (%s); its %s rejects are not listed",
                        self.where, ref.get("name"), exc, ref.get("count"))
            return []
        return rejects

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
        """Samples a reader yields: the shards' samples less the tombstoned ones (format §5.1)."""
        removed = self.overrides.get("removed", {}) if self.overrides else {}
        return sum(s.samples for s in self.shards) - sum(len(v) for v in removed.values())

    @property
    def derived(self) -> bool:
        """Whether the set uses shards of an ancestor or overrides (it needs them to be read)."""
        return any(s.origin is not None for s in self.shards) or bool(self.overrides)

    @property
    def mode(self) -> str:
        """``"recordings"`` or ``"segments"`` (``layout.mode``)."""
        return str(self.layout.get("mode", "segments"))


#: the suffix a publishing layout gives shards (shardkit.kaggle: ``shard-NNNNN.tar`` → ``shard-NNNNN.shard``)
PUBLISHED_SUFFIX = ".shard"


def _written_name(name: str) -> str:
    """The shard name a pack wrote for a published one: ``shard-NNNNN.shard`` → ``shard-NNNNN.tar``."""
    return name[: -len(PUBLISHED_SUFFIX)] + fmt.SHARD_SUFFIX if name.endswith(PUBLISHED_SUFFIX) else name


def _columns_from_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """The version-4 keys (§5.4), type-checked: ``columns`` maps names to a known type, ``rejects_file`` is
    null or names a plain file with its count, size and sha256."""
    columns, ref = doc.get("columns"), doc.get("rejects_file")
    if columns is None:  # a version-4 manifest of label layers only: rejects inline, as before
        return {"rejects_file": ref} if ref is not None else {}
    if not isinstance(columns, dict) or not all(isinstance(k, str) and v in fmt.COLUMN_TYPES
                                                for k, v in columns.items()):
        raise TypeError(f"'columns' must map column names to one of {', '.join(fmt.COLUMN_TYPES)}")
    if ref is not None and not (isinstance(ref, dict) and is_plain_name(str(ref.get("name", "")))
                                and all(isinstance(ref.get(k), int) and not isinstance(ref.get(k), bool)
                                        and ref[k] >= 0 for k in ("count", "bytes"))
                                and isinstance(ref.get("sha256"), str)):
        raise TypeError("'rejects_file' must be null or {name (a plain file name), count, bytes, sha256}")
    return {"columns": dict(columns), "rejects_file": ref}


def _str_list(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{what} must be a list of strings")
    return list(value)


def _lineage_from_doc(doc: dict[str, Any], shards: list[ShardEntry]) -> dict[str, Any]:
    """The version-3 keys (§5.1), type-checked: every origin has a vocabulary, every tombstone and
    relabel names a listed shard and well-typed labels."""
    parent, history = doc.get("parent"), doc.get("history", [])
    overrides, vocabularies, sources = (doc.get(k, {}) for k in ("overrides", "vocabularies", "sources"))
    if parent is not None and not isinstance(parent, str):
        raise TypeError("'parent' must be a version id or null")
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise TypeError("'history' must be a list of maps")
    if not all(isinstance(x, dict) for x in (overrides, vocabularies, sources)):
        raise TypeError("'overrides', 'vocabularies' and 'sources' must be maps")
    vocabularies = {str(k): _str_list(v, f"vocabularies[{k!r}]") for k, v in vocabularies.items()}
    for s in shards:
        if s.origin is not None and s.origin not in vocabularies:
            raise ValueError(f"shard entry {s.name!r} comes from {s.origin!r}, which 'vocabularies' lacks")
    names = {s.name for s in shards}
    removed, relabels = overrides.get("removed", {}), overrides.get("relabels", {})
    if not isinstance(removed, dict) or not isinstance(relabels, dict):
        raise TypeError("'overrides' must hold maps 'removed' and 'relabels'")
    for shard, keys in removed.items():
        if shard not in names:
            raise ValueError(f"overrides.removed names {shard!r}, which is not a shard of the set")
        _str_list(keys, f"overrides.removed[{shard!r}]")
    for key, new in relabels.items():
        if not isinstance(new, dict) or not (new.get("primary_label") is None
                                              or isinstance(new.get("primary_label"), str)):
            raise TypeError(f"overrides.relabels[{key!r}] must be a map with a primary_label")
        _str_list(new.get("secondary_labels", []), f"overrides.relabels[{key!r}].secondary_labels")
        if not isinstance(new.get("extra", {}), dict):
            raise TypeError(f"overrides.relabels[{key!r}].extra must be a map")
    if sources and not (is_plain_name(str(sources.get("name", ""))) and isinstance(sources.get("sha256"), str)):
        raise ValueError("'sources' must name a plain file in the set and its sha256")
    return {"parent": parent, "history": history, "overrides": overrides, "vocabularies": vocabularies,
            "sources": sources}


def _layers_from_doc(doc: dict[str, Any], names: list[str]) -> list[LayerEntry]:
    """The version-4 ``layers`` list (§5.3), checked: each a :class:`LayerEntry`, names unique, files not
    those of a shard or the sources table."""
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise TypeError("'layers' must be a list")
    out = [LayerEntry.from_dict(e) for e in layers]
    taken = {*names, str(doc.get("sources", {}).get("name", "")), fmt.MANIFEST_NAME}
    if len({e.name for e in out}) != len(out) or any(e.file in taken for e in out):
        raise ValueError("a layer is listed twice, or its file is another file of the set")
    return out


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and check ``manifest.json`` (``path`` is the file or the shard-set folder)."""
    return Manifest.load(path)
