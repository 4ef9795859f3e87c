"""Label layers (format §5.3, version 4): a named float16 matrix of targets over a set's samples.

A layer is one file next to the manifest (``labels-NAME.layer``) that the manifest lists with its size
and sha256 (:class:`LayerEntry`). The file (:class:`Layer`) is a zstd frame (with content checksum)
holding one msgpack map: the layer's ``classes`` (its columns), ``rows`` and either

- ``kind="samples"``: one row per sample ``key`` (keys sorted), or
- ``kind="windows"``: rows per time window of a source recording: ``sources`` (sorted), ``source_ptr``
  (CSR: rows of source s are ``source_ptr[s]:source_ptr[s+1]``) and ``window`` (the window number w of
  each row, ascending within a source: it covers source seconds ``[w·hop_seconds, w·hop_seconds +
  window_seconds)``),

and ``values``: rows × classes float16 little-endian, row-major, every value finite in [0, 1].
This module reads and writes the document and checks it; it knows nothing of tables or datasets.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
import zstandard

from shardkit.errors import FormatError
from shardkit.format import LAYERS_VERSION

KINDS = ("samples", "windows")
LAYER_PREFIX, LAYER_SUFFIX = "labels-", ".layer"
_NAME = re.compile(r"[A-Za-z0-9_\-]{1,64}")
#: a layer file is read whole: at most this many bytes, and inflated to at most this many
MAX_LAYER_BYTES = 1 << 31
_DTYPE = np.dtype("<f2")


def check_name(name: str) -> str:
    """``name`` if it is a layer name (1–64 of ``A-Z a-z 0-9 _ -``), else :class:`ValueError`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"layer name {name!r} must be 1-64 letters, digits, '_' or '-'")
    return name


def layer_file(name: str) -> str:
    """``labels-NAME.layer``: the file of layer ``name``."""
    return f"{LAYER_PREFIX}{check_name(name)}{LAYER_SUFFIX}"


@dataclass(frozen=True)
class LayerEntry:
    """A layer as the manifest lists it (``layers[]``, every key REQUIRED but ``note``)."""

    name: str
    file: str
    bytes: int
    sha256: str
    kind: str
    classes: list[str]
    rows: int
    window_seconds: float | None = None
    hop_seconds: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, doc: Any) -> LayerEntry:
        """Checked; :class:`TypeError`/:class:`ValueError` naming the key (the manifest wraps them)."""
        if not isinstance(doc, dict):
            raise TypeError(f"a layer entry must be a map, got {doc!r:.80}")
        name = check_name(doc.get("name"))  # type: ignore[arg-type]
        for key, kind in (("file", str), ("sha256", str), ("kind", str), ("bytes", int), ("rows", int),
                          ("classes", list)):
            value = doc.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise TypeError(f"layer {name!r}: {key!r} is {value!r:.80}")
        if doc["file"] != layer_file(name):
            raise ValueError(f"layer {name!r}: 'file' must be {layer_file(name)!r}, got {doc['file']!r:.80}")
        if doc["kind"] not in KINDS or min(doc["bytes"], doc["rows"]) < 0:
            raise ValueError(f"layer {name!r}: kind {doc['kind']!r} or a count is not valid")
        if not all(isinstance(c, str) for c in doc["classes"]):
            raise TypeError(f"layer {name!r}: 'classes' must be a list of names")
        seconds = [doc.get("window_seconds"), doc.get("hop_seconds")]
        if (doc["kind"] == "windows") != all(_positive(s) for s in seconds):
            raise ValueError(f"layer {name!r}: a windows layer has positive window_seconds and hop_seconds, "
                             "a samples layer neither")
        return cls(name=name, file=doc["file"], bytes=doc["bytes"], sha256=doc["sha256"], kind=doc["kind"],
                   classes=list(doc["classes"]), rows=doc["rows"], window_seconds=seconds[0],
                   hop_seconds=seconds[1], note=str(doc.get("note", "")))


def _positive(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0


@dataclass
class Layer:
    """The document of a layer file (module docstring). ``values`` float16 (rows, classes)."""

    name: str
    kind: str
    classes: list[str]
    values: np.ndarray
    keys: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    source_ptr: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    window: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    window_seconds: float | None = None
    hop_seconds: float | None = None

    @property
    def rows(self) -> int:
        return int(self.values.shape[0])

    def to_bytes(self) -> bytes:
        """The file's bytes: deterministic for equal content."""
        doc: dict[str, Any] = {"format": "shardkit.layer", "format_version": LAYERS_VERSION, "name": self.name,
                               "kind": self.kind, "classes": list(self.classes), "rows": self.rows,
                               "dtype": _DTYPE.str,
                               "values": np.ascontiguousarray(self.values, dtype=_DTYPE).tobytes()}
        if self.kind == "samples":
            doc["keys"] = list(self.keys)
        else:
            doc.update(sources=list(self.sources), source_ptr=[int(x) for x in self.source_ptr],
                       window=[int(x) for x in self.window], window_seconds=float(self.window_seconds or 0),
                       hop_seconds=float(self.hop_seconds or 0))
        raw = msgpack.packb(doc, use_bin_type=True)
        return zstandard.ZstdCompressor(level=10, write_checksum=True).compress(raw)

    def entry(self, data: bytes, note: str = "") -> LayerEntry:
        """The manifest's entry for this layer written as ``data`` (:meth:`to_bytes`)."""
        return LayerEntry(name=self.name, file=layer_file(self.name), bytes=len(data),
                          sha256=hashlib.sha256(data).hexdigest(), kind=self.kind, classes=list(self.classes),
                          rows=self.rows, window_seconds=self.window_seconds, hop_seconds=self.hop_seconds,
                          note=note)

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Layer:
        """Parse and check a layer file; :class:`FormatError` naming ``where`` and what is wrong."""
        try:
            # like an index (format §6.3): no more than 64 MiB + 64 × its compressed size (a decompression bomb)
            limit = min(MAX_LAYER_BYTES, (64 << 20) + 64 * len(data))
            raw = _inflate(data, limit)
            if len(raw) > limit:
                raise ValueError(f"inflates past {limit} bytes (64 MiB + 64 x its size): refused as a "
                                 "decompression bomb")
            doc = msgpack.unpackb(raw, raw=False, strict_map_key=True)
        except (zstandard.ZstdError, ValueError, msgpack.UnpackException) as exc:
            raise FormatError(f"{where}: not a readable layer file ({exc}); re-download the shard set") from None
        if not isinstance(doc, dict) or doc.get("format") != "shardkit.layer":
            raise FormatError(f"{where}: not a shardkit layer file (no \"format\": \"shardkit.layer\")")
        if doc.get("format_version") != LAYERS_VERSION:
            raise FormatError(f"{where}: layer has format_version {doc.get('format_version')!r}, this shardkit "
                              f"reads {LAYERS_VERSION}; upgrade shardkit (pip install -U shardkit)")
        try:
            return cls._from_doc(doc)
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"{where}: layer is malformed ({exc.args[0] if exc.args else exc!r})") from None

    @classmethod
    def _from_doc(cls, doc: dict[str, Any]) -> Layer:
        classes, rows, kind = doc["classes"], doc["rows"], doc["kind"]
        if kind not in KINDS or not isinstance(rows, int) or rows < 0:
            raise ValueError(f"kind {kind!r} or rows {rows!r} is not valid")
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise TypeError("'classes' must be a list of names")
        if len(set(classes)) != len(classes) or doc.get("dtype") != _DTYPE.str:
            raise ValueError("'classes' repeats a name, or 'dtype' is not '<f2'")
        values = doc["values"]
        if not isinstance(values, bytes) or len(values) != rows * len(classes) * 2:
            raise ValueError(f"'values' must hold rows x classes = {rows} x {len(classes)} float16 values")
        layer = cls(name=check_name(doc["name"]), kind=kind, classes=list(classes),
                    values=np.frombuffer(values, dtype=_DTYPE).reshape(rows, len(classes)))
        if kind == "samples":
            keys = doc["keys"]
            if not isinstance(keys, list) or len(keys) != rows or not all(isinstance(k, str) for k in keys):
                raise ValueError("'keys' must list one key per row")
            layer.keys = keys
        else:
            _windows(layer, doc)
        return layer

    def findings(self) -> list[str]:
        """What is wrong with the content (values outside [0, 1] or not finite, rows out of order or
        repeated); empty when nothing is. The structure is checked by :meth:`from_bytes`."""
        out = []
        v = self.values.astype(np.float32)
        bad = ~np.isfinite(v) | (v < 0) | (v > 1)
        if bad.any():
            r, c = (int(x) for x in np.argwhere(bad)[0])
            out.append(f"{int(bad.sum())} values are not finite or outside [0, 1] (first: row {r}, class "
                       f"{self.classes[c]!r}: {v[r, c]})")
        if self.kind == "samples" and any(a >= b for a, b in zip(self.keys, self.keys[1:])):
            out.append("keys are not sorted or not unique")
        if self.kind == "windows":
            ptr, w = self.source_ptr, self.window
            inner = np.ones(len(w), dtype=bool)
            inner[ptr[:-1][np.diff(ptr) > 0]] = False  # the first row of each source
            unsorted = any(a >= b for a, b in zip(self.sources, self.sources[1:]))
            if unsorted or (np.diff(w, prepend=-1)[inner] <= 0).any():
                out.append("sources or windows are not sorted or not unique")
        return out


def _inflate(data: bytes, limit: int) -> bytes:
    """The zstd frame ``data`` inflated, at most ``limit + 1`` bytes of it (more means: over the limit)."""
    out = bytearray()
    with zstandard.ZstdDecompressor().stream_reader(data) as reader:
        while len(out) <= limit and (chunk := reader.read(min(1 << 20, limit + 1 - len(out)))):
            out += chunk
    return bytes(out)


def _windows(layer: Layer, doc: dict[str, Any]) -> None:
    """The windows kind's keys of ``doc`` into ``layer``, checked."""
    sources, ptr, window = doc["sources"], doc["source_ptr"], doc["window"]
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise TypeError("'sources' must be a list of paths")
    if not isinstance(ptr, list) or not isinstance(window, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in [*ptr, *window]):
        raise TypeError("'source_ptr' and 'window' must be lists of integers")
    layer.source_ptr = np.asarray(ptr, dtype=np.int64)
    layer.window = np.asarray(window, dtype=np.int64)
    if (len(ptr) != len(sources) + 1 or ptr[0] != 0 or ptr[-1] != layer.rows or len(window) != layer.rows
            or (np.diff(layer.source_ptr) < 0).any() or (layer.window < 0).any()):
        raise ValueError("'source_ptr' must cut the rows among 'sources' and 'window' number each row")
    if not (_positive(doc.get("window_seconds")) and _positive(doc.get("hop_seconds"))):
        raise ValueError("a windows layer needs positive 'window_seconds' and 'hop_seconds'")
    layer.sources = sources
    layer.window_seconds, layer.hop_seconds = float(doc["window_seconds"]), float(doc["hop_seconds"])


def layer_findings(data: bytes, entry: LayerEntry, keys: set[str] | None, sources: set[str] | None,
                   where: str) -> list[str]:
    """Everything wrong with the layer file ``data`` of manifest entry ``entry`` in a set whose samples
    have ``keys`` and whose sources are ``sources`` (``shardkit verify``): size and sha256, structure,
    the entry's kind, classes, rows and windows, values in [0, 1], rows naming the set's samples (not
    checked when ``keys``/``sources`` is None: the set's indexes could not all be read)."""
    out = []
    if len(data) != entry.bytes or hashlib.sha256(data).hexdigest() != entry.sha256:
        out.append("size or sha256 differs from the manifest")
    try:
        layer = Layer.from_bytes(data, where)
    except FormatError as exc:
        return [*out, str(exc)]
    if layer.name != entry.name or layer.kind != entry.kind or layer.classes != entry.classes \
            or layer.rows != entry.rows:
        out.append(f"name, kind, classes or rows ({layer.name!r}, {layer.kind}, {len(layer.classes)} classes, "
                   f"{layer.rows} rows) differ from the manifest's entry")
    if (layer.window_seconds, layer.hop_seconds) != (entry.window_seconds, entry.hop_seconds):
        out.append("window_seconds or hop_seconds differ from the manifest's entry")
    out += layer.findings()
    named, known = (layer.keys, keys) if layer.kind == "samples" else (layer.sources, sources)
    stray = [k for k in named if k not in known] if known is not None else []
    if stray:
        out.append(f"{len(stray)} rows name no {'sample' if layer.kind == 'samples' else 'source'} of the set "
                   f"(first: {stray[0]!r})")
    return out
