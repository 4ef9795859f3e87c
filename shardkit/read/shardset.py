"""A finished shard set on disk, as flat numpy columns over all of its samples.

:class:`ShardSet` reads ``manifest.json`` and every shard index once (docs/format.md §4–§6) and
keeps one row per sample in shard order. Sample ``i`` of the set is row ``i`` of every column.
Audio is then read by byte offset; no tar header is parsed.

Every byte is read through a :class:`~shardkit.storage.base.Storage` (by default
:class:`~shardkit.storage.local.LocalStorage` on the set's folder): the one seam a remote store replaces.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shardkit import format as fmt
from shardkit.encode import meta as meta_codec
from shardkit.encode.base import Codec, FrameCodec
from shardkit.errors import (
    FormatError,
    IntegrityError,
    SampleNotFoundError,
    ShardIndexError,
    ShardkitError,
    ShardReadError,
    StorageError,
    UnsupportedVersionError,
    UsageError,
)
from shardkit.format import Manifest, checks
from shardkit.storage import location
from shardkit.storage.base import OpenFailed, ShardChanged, ShortRead, Storage
from shardkit.storage.local import LocalStorage
from shardkit.storage.location import Location

log = logging.getLogger(__name__)
#: the end of a read error's message: advice a reader that already skips (on_error="skip") leaves out
SKIP_HINT = " (or pass on_error='skip' to skip such samples)"

__all__ = ["ShardSet", "key_hashes"]


def key_hashes(keys: list[str]) -> np.ndarray:
    """uint64 (N,): the first 8 bytes of blake2b(key, UTF-8) read little-endian; a stable id per key."""
    raw = b"".join(hashlib.blake2b(k.encode("utf-8")).digest()[:8] for k in keys)
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64)


class ShardSet:
    """All samples of a shard set as columns; cheap to pickle, reads by byte offset.

    Columns (N samples, S shards):

    - ``shard_id`` int32 (N,): shard number of each sample; ``shard_ptr`` int64 (S+1,): first row of
      each shard (rows of shard s are ``shard_ptr[s]:shard_ptr[s+1]``)
    - ``wav_offset`` int64 (N,): byte offset of the data member (whatever its codec) in its shard;
      ``payload_offset`` = where its frames start (``wav_offset`` + the header bytes of a
      :class:`~shardkit.encode.FrameCodec`; ``wav_offset`` for a codec read whole); ``sample_bytes`` int64: bytes of
      the data member (header + payload); ``wav_crc32`` uint32 (N,): zlib CRC-32 of that member (the
      read-ahead hint's :class:`~shardkit.storage.base.Extent`)
    - ``meta_offset``, ``meta_size`` int64 (N,): the ``.mp`` member (msgpack)
    - ``frames`` int64 (N,): stored frames (see :attr:`codec`: audio samples per channel for wav16,
      spectrogram frames for mel-u8)
    - ``label`` int32 (N,): primary label, an index into ``vocabulary``, −1 for none
    - ``sec_ptr`` int64 (N+1,), ``sec_idx`` int32: secondary labels in CSR form (sample i has
      ``sec_idx[sec_ptr[i]:sec_ptr[i+1]]``)
    - ``codec_columns``: the codec's own index columns (:attr:`Codec.index_columns`), name → (N,) array
    - ``keys`` list[str]; ``key_hash`` uint64 (N,): see :func:`key_hashes`
    - ``source`` list[str] (N): the source file of each sample (relative to the pack's SRC); ``start``
      int64 (N,): its first frame in the resampled source (audio frames at :attr:`sample_rate`)
    - ``source_id`` int32 (N,): the same as an index into ``source_names`` (the distinct paths, sorted)
    """

    def __init__(self, root: str | os.PathLike[str] | Location, manifest: Manifest, columns: dict[str, Any],
                 storage: Storage | None = None) -> None:
        #: where the set lives (:class:`~shardkit.storage.location.Location`: ``str()`` is its folder or URL,
        #: ``.path`` a local set's folder)
        self.root: Location = Location.parse(root)
        self.manifest = manifest
        #: where the bytes come from (:class:`~shardkit.storage.base.Storage`)
        self.storage: Storage = storage if storage is not None else LocalStorage(self.root.path)
        self.vocabulary: list[str] = list(manifest.vocabulary)
        #: the codec of the data members (:class:`shardkit.encode.Codec`)
        self.codec: Codec = manifest.codec
        self.sample_rate: int = self.codec.sample_rate
        self.channels: int = self.codec.channels
        #: bytes of one decoded frame (the codec's :attr:`~shardkit.encode.Codec.frame_bytes`)
        self.frame_bytes: int = self.codec.frame_bytes
        #: the log-mel front end's settings (``MelConfig.to_dict()``) of a set that stores spectrograms
        self.mel: dict[str, Any] | None = self.codec.mel.to_dict() if self.codec.mel is not None else None
        #: seconds of audio per stored frame
        self.seconds_per_frame: float = self.codec.seconds_per_frame
        self.mode: str = manifest.mode
        self.version_id: str = manifest.version_id
        self.shard_names: list[str] = [e.name for e in manifest.shards]
        self.keys: list[str] = columns["keys"]
        self.source: list[str] = columns["source"]
        self.start: np.ndarray = columns["start"]
        self.shard_id: np.ndarray = columns["shard_id"]
        self.shard_ptr: np.ndarray = columns["shard_ptr"]
        self.wav_offset: np.ndarray = columns["wav_offset"]
        #: byte offset of each sample's payload (its first frame; the member for a codec read whole)
        self.payload_offset: np.ndarray = self.wav_offset + (
            self.codec.header_bytes if isinstance(self.codec, FrameCodec) else 0)
        self.sample_bytes: np.ndarray = columns["sample_bytes"]
        self.meta_offset: np.ndarray = columns["meta_offset"]
        self.meta_size: np.ndarray = columns["meta_size"]
        self.frames: np.ndarray = columns["frames"]
        #: uint32 (N,): zlib CRC-32 of each data member and ``.mp`` member (index ``wav_crc32``/``meta_crc32``)
        self.wav_crc32: np.ndarray = columns["wav_crc32"]
        self.meta_crc32: np.ndarray = columns["meta_crc32"]
        self.label: np.ndarray = columns["label"]
        self.sec_ptr: np.ndarray = columns["sec_ptr"]
        self.sec_idx: np.ndarray = columns["sec_idx"]
        self.codec_columns: dict[str, np.ndarray] = columns["codec"]
        self.key_hash: np.ndarray = key_hashes(self.keys)
        names, ids = np.unique(np.asarray(self.source, dtype=object).astype(str), return_inverse=True)
        self.source_names: list[str] = [str(x) for x in names]
        self.source_id: np.ndarray = ids.astype(np.int32).reshape(-1)
        #: key → new labels and columns of samples relabelled by ``update`` (format §5.1)
        self.relabels: dict[str, dict[str, Any]] = dict(manifest.overrides.get("relabels", {}))
        self._key_rows: dict[str, int] | None = None
        self._bind_storage()

    @property
    def start_seconds(self) -> np.ndarray:
        """float64 (N,): where each sample starts in its source recording, in seconds."""
        return self.start / float(self.sample_rate)

    def read_layer(self, name: str) -> Any:
        """The label layer ``name`` of the set (format §5.3) as a :class:`shardkit.format.layers.Layer`,
        its file checked against the manifest's size and sha256; :class:`UsageError` naming the layers
        there are when the set has none of that name, :class:`IntegrityError` for a changed file."""
        from shardkit.format.layers import Layer

        entry = next((e for e in self.manifest.layers if e.name == name), None)
        if entry is None:
            have = ", ".join(e.name for e in self.manifest.layers) or "none"
            raise UsageError(f"{self.root}: has no label layer {name!r} (layers: {have}); add one with "
                             f"'shardkit labels add {self.root} NEW --name {name} TABLE'")
        where = self.storage.describe(entry.file)
        try:
            data = self.storage.read_bytes(entry.file)
        except FileNotFoundError:
            raise ShardReadError(f"{where}: label layer file is missing; re-download the shard set") from None
        if len(data) != entry.bytes or hashlib.sha256(data).hexdigest() != entry.sha256:
            raise IntegrityError(f"{where}: size or sha256 differs from the manifest's; the layer file changed. "
                                 f"Run 'shardkit verify {self.root}' and re-download the shard set")
        try:
            return Layer.from_bytes(data, where)
        except FormatError as exc:
            raise IntegrityError(str(exc)) from None

    @property
    def q_range(self) -> np.ndarray | None:
        """float32 (N, 2): each sample's quantisation range ``[q_lo, q_hi]`` in dB for sets whose codec
        quantises (mel-u8; the batches' ``mel_range``), else None."""
        fields = self.codec.batch_fields(self.codec_columns, np.arange(len(self)))
        return next(iter(fields.values()), None)

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, storage: Storage | None = None,
             storage_options: dict[str, Any] | None = None,
             search_path: Sequence[str | os.PathLike[str]] | None = None) -> ShardSet:
        """Open the shard set at ``path``: its folder or its ``manifest.json``, or an object-store URL
        (``s3://bucket/prefix/``, ``gs://…``, ``az://…``, ``http(s)://…``; docs/reading.md).

        ``storage``: where to read its files (default :func:`~shardkit.storage.object.open_storage` of the
        location: :class:`LocalStorage` of a folder, :class:`~shardkit.storage.object.ObjectStorage` of a
        URL, with ``storage_options``); ``path`` then names the set in messages and the manifest's name.
        A URL's manifest and indexes are read once, in a child process (fork safety). Checks the manifest's and every
        index's format version, that each index belongs to the manifest (vocabulary, codec, sample
        count) and that each shard's size is what its index says. Raises :class:`ManifestError`,
        :class:`UnsupportedVersionError`, :class:`ShardIndexError`, :class:`ShardReadError` (a shard
        file is missing) or :class:`IntegrityError` (size mismatch).

        A set made by ``shardkit update`` (format §5.1) reads its ancestors' shards where they are:
        next to it, or in a root of ``search_path`` or of ``$SHARDKIT_SEARCH_PATH``
        (:mod:`shardkit.read.lineage`: found by name, accepted by sha256), and its overrides are
        applied: tombstoned samples are not there, relabelled ones carry their new labels. A
        ``kaggle://OWNER/SLUG`` location also searches every attached notebook input (a delta dataset's parents).
        """
        path, search_path = location.resolve_location(path, search_path)
        root, name, storage = locate_set(path, storage, storage_options)
        manifest = load_manifest(storage, name)
        codec = manifest.codec
        if manifest.derived:
            storage = _lineage_storage(root, manifest, storage, search_path)
        indexes = []
        for entry in manifest.shards:
            index = _load_index(storage, entry, root)
            vocab = manifest.vocabularies[entry.origin] if entry.origin is not None else manifest.vocabulary
            checks.raise_first(checks.index_findings(index, entry, vocab, codec), storage.describe, root)
            _check_shard(storage, entry, index, codec, root)
            indexes.append(index)
        if manifest.derived:
            from shardkit.format.overrides import apply_overrides

            indexes = apply_overrides(manifest, indexes)
        checks.raise_first(checks.set_findings(indexes, [e.index for e in manifest.shards], len(manifest.vocabulary)),
                           storage.describe, root)
        checks.raise_first(checks.totals_findings(manifest, indexes), storage.describe, root)
        out = cls(root, manifest, _concat_columns(indexes, codec), storage)
        log.debug("opened %s: %d samples in %d shards", root, len(out), len(indexes))
        return out

    # -- lookup ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return (f"ShardSet({str(self.root)!r}, samples={len(self)}, shards={len(self.shard_names)}, "
                f"mode={self.mode!r}, sample_rate={self.sample_rate}, channels={self.channels})")

    def find(self, key: str) -> int:
        """Row of the sample with ``key``; raises :class:`SampleNotFoundError`."""
        if self._key_rows is None:
            self._key_rows = {k: i for i, k in enumerate(self.keys)}
        try:
            return self._key_rows[key]
        except KeyError:
            raise SampleNotFoundError(
                f"{self.root}: no sample with key {key!r} among {len(self)} samples{self._key_hint(key)}"
                if self.keys else f"{self.root}: no sample with key {key!r}: the shard set is empty") from None

    def _key_hint(self, key: str) -> str:
        """What the user may have meant by a key that is not in the set: the key without its file
        extension, and with the ``-NNNN`` piece number every key ends in (``label/XC713870`` →
        ``label/XC713870-0000``)."""
        head, _, tail = key.rpartition("/")
        stem, dot, ext = tail.partition(".")
        stem = f"{head}/{stem}" if head else stem
        hint = f" (keys have no extension: drop '.{ext}')" if dot else ""
        if stem in self._key_rows:  # type: ignore[operator]
            return f"{hint}; did you mean {stem!r}?"
        pieces = [k for k in self.keys if k.startswith(stem + "-") and k[len(stem) + 1:].isdigit()]
        if pieces:
            more = f" (its recording has {len(pieces)} pieces: {pieces[0]!r} … {pieces[-1]!r})" \
                if len(pieces) > 1 else ""
            return f"{hint}; did you mean {pieces[0]!r}{more}? keys end in the piece number -NNNN"
        return f"{hint}; keys look like {self.keys[0]!r}"

    # -- reading ---------------------------------------------------------------------------------

    def _pread(self, i: int, offset: int, size: int) -> bytearray:
        """``size`` bytes at ``offset`` of sample ``i``'s shard; :class:`ShardReadError` if they cannot be read."""
        buf = bytearray(size)
        errors = self.storage.read_into(self.shard_names[int(self.shard_id[i])],
                                        [(offset, size, memoryview(buf))])
        if errors:
            err = errors[0][1]
            raise self.range_error(i, err) from (None if isinstance(err, ShortRead | OpenFailed) else err)
        return buf

    def range_error(self, i: int, err: OSError) -> ShardReadError:
        """The :class:`ShardReadError` for a failed read of sample ``i`` (a range error of
        :meth:`Storage.read_into`): the shard cannot be opened, is short, or the read failed."""
        if isinstance(err, ShardChanged):
            return ShardReadError(f"{err.where}: sample {self.keys[i]!r}: {err.reason}, so its index no longer "
                                  "describes it. Open the shard set again (a new ShardSet/ShardDataset) to read "
                                  f"the new files, or run 'shardkit verify {self.root}' if nothing should have "
                                  "changed it")
        if isinstance(err, OpenFailed):
            return ShardReadError(f"{err.where}: cannot open shard ({err.reason}); re-download or re-pack "
                                  f"the shard set, or run 'shardkit verify {self.root}'")
        if isinstance(err, ShortRead):
            return self.read_error(i, f"short read: {err.got} of {err.wanted} bytes at offset {err.offset}")
        if isinstance(err, StorageError):  # the storage failed, not the shard: its own advice
            return ShardReadError(f"sample {self.keys[i]!r}: {err}")
        return self.read_error(i, f"read failed ({err})")

    def read_error(self, i: int, what: str) -> ShardReadError:
        """A :class:`ShardReadError` naming the shard and sample ``i`` and what to do."""
        name = self.shard_names[int(self.shard_id[i])]
        return ShardReadError(
            f"{self.storage.describe(name)}: sample {self.keys[i]!r}: {what}; the shard is truncated or "
            f"changed since it was indexed. Run 'shardkit verify {self.root}', then re-download or "
            f"re-pack the shard set{SKIP_HINT}")

    def read_data_member(self, i: int) -> bytes:
        """The whole data member of sample ``i`` (``KEY.<codec ext>``): a ``.wav`` file for wav16 sets,
        an ``.npy`` file for mel-u8 sets (``numpy.load`` gives uint8 ``(n_mels, frames)``)."""
        return bytes(self._pread(i, int(self.wav_offset[i]), int(self.sample_bytes[i])))

    def read_meta(self, i: int) -> dict[str, Any]:
        """The decoded ``.mp`` member (msgpack) of sample ``i`` (docs/format.md §3.2); a damaged one
        raises :class:`ShardReadError` naming the shard and the sample."""
        data = self._pread(i, int(self.meta_offset[i]), int(self.meta_size[i]))
        try:
            meta = meta_codec.decode(bytes(data))
        except FormatError as exc:
            raise self.read_error(i, str(exc)) from None
        new = self.relabels.get(self.keys[i])
        if new is not None:
            meta.update({k: new[k] for k in ("primary_label", "secondary_labels", "extra") if k in new})
        return meta

    def read_frames(self, i: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``[start, stop)`` of sample ``i`` (clipped to the sample), in the codec's
        :meth:`~shardkit.encode.Codec.frames_view` shape: the bytes the codec's
        :meth:`~shardkit.encode.Codec.crop_ranges` names (just those frames for a frame codec, whose
        header is not parsed; the whole member otherwise), cropped by :meth:`~shardkit.encode.Codec.crop`.

        wav16: int16 (frames,) for mono sets, (frames, channels) otherwise. mel-u8: uint8
        ``(n_mels, frames)`` of the quantised spectrogram (dequantise with :attr:`q_range`).
        """
        frames = int(self.frames[i])
        stop = frames if stop is None else min(max(int(stop), 0), frames)
        start = min(max(int(start), 0), stop)
        offset, nbytes = self.codec.crop_ranges(int(self.wav_offset[i]), int(self.sample_bytes[i]), start, stop - start)
        data = self._pread(i, int(offset), int(nbytes))
        try:
            values = self.codec.crop(data, start, stop - start)
        except FormatError as exc:
            raise self.read_error(i, f"its {self.codec.codec_id} data member cannot be decoded ({exc})") from None
        return self.codec.frames_view(values)

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the shard files this process opened (reading again reopens them)."""
        self.storage.close()

    def __enter__(self) -> ShardSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_key_rows"] = None
        state["_members"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bind_storage()

    def use_storage(self, storage: Storage) -> None:
        """Read this process's bytes through ``storage`` from now on (e.g. the same store behind a shard
        cache: :class:`~shardkit.storage.cache.wrapper.CachedStorage`)."""
        self.storage = storage
        self._bind_storage()

    # -- members, for storages that fetch and check whole members ------------------------------------

    def _bind_storage(self) -> None:
        self._members: dict[str, Any] = {}
        if self.storage.capabilities.checks_members:
            self.storage.bind_members(self.members)

    def members(self, shard: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The members of ``shard`` (data and ``.mp``), sorted by offset: (starts int64, ends int64,
        CRC-32s int64); None for a name that is not a shard of the set."""
        got = self._members.get(shard)
        if got is None:
            try:
                s = self.shard_names.index(shard)
            except ValueError:
                return None
            rows = slice(int(self.shard_ptr[s]), int(self.shard_ptr[s + 1]))
            starts = np.concatenate([self.wav_offset[rows], self.meta_offset[rows]])
            ends = starts + np.concatenate([self.sample_bytes[rows], self.meta_size[rows]])
            crcs = np.concatenate([self.wav_crc32[rows], self.meta_crc32[rows]]).astype(np.int64)
            order = np.argsort(starts, kind="stable")
            got = self._members[shard] = (starts[order], ends[order], crcs[order])
        return got


def locate_set(path: str | os.PathLike[str], storage: Storage | None, storage_options: dict[str, Any] | None
               ) -> tuple[Location, str, Storage]:
    """(location, manifest name, storage) of a set's folder, URL or manifest; a storage that preloads reads
    the metadata ahead in one go."""
    path, _ = location.resolve_location(path, None)  # kaggle://… and other registered schemes
    root, name = Location.of_set(path, fmt.MANIFEST_NAME)
    if storage is None:
        storage = location.open_storage(root, storage_options)
    storage.open_set(name)
    return root, name, storage


def load_manifest(storage: Storage, name: str) -> Manifest:
    """The manifest ``name`` of ``storage``, read and checked (:meth:`Manifest.fetch`)."""
    return Manifest.fetch(lambda: storage.read_bytes(name), storage.describe(name))


def _lineage_storage(root: Location, manifest: Manifest, storage: Storage,
                     search_path: Sequence[str | os.PathLike[str]] | None) -> Storage:
    """The storage of a derived set: its own folder, and its ancestors' shards where they were found."""
    from shardkit.read.lineage import resolve
    from shardkit.storage.routed import RoutedStorage

    if not root.is_local:
        if any(e.origin is not None for e in manifest.shards):
            raise UsageError(f"{root}: uses shards of an earlier version ({manifest.parent}), which is not "
                             "supported on object storage; upload 'shardkit compact' of it instead")
        return storage
    return RoutedStorage(storage, resolve(root.path, manifest, search_path))


def _load_index(storage: Storage, entry: fmt.ShardEntry, root: Path) -> fmt.ShardIndex:
    where = storage.describe(entry.index)
    try:
        data = storage.read_bytes(entry.index)
    except ShardkitError:
        raise
    except FileNotFoundError as exc:
        raise ShardIndexError(f"{where}: shard index is missing; {checks.advice(checks.REINDEX, root)}") from exc
    except OSError as exc:
        raise ShardIndexError(f"{where}: cannot read the shard index ({exc.strerror or exc}); "
                              f"{checks.advice(checks.REINDEX, root)}") from exc
    try:
        return fmt.ShardIndex.from_bytes(data, where)
    except UnsupportedVersionError:
        raise
    except ShardIndexError as exc:
        raise ShardIndexError(f"{exc}; {checks.advice(checks.REINDEX, root)}") from None


def _check_shard(storage: Storage, entry: fmt.ShardEntry, index: fmt.ShardIndex, codec: Codec, root: Path) -> None:
    """The shard exists, has the size its index says, and every member lies inside it."""
    where = storage.describe(entry.name)
    try:
        size = storage.size(entry.name)
    except FileNotFoundError as exc:
        raise ShardReadError(f"{where}: shard is missing (listed in {storage.describe(fmt.MANIFEST_NAME)}); "
                             "re-download or re-pack the shard set") from exc
    if size != index.shard_bytes:
        raise IntegrityError(f"{where}: shard has {size} bytes, its index says "
                             f"{index.shard_bytes}; the shard is truncated or was replaced. "
                             f"Run 'shardkit verify {root}' and re-download or re-pack it")
    checks.raise_first(checks.extent_findings(index, entry.index, size, codec), storage.describe, root)


def _int64(indexes: list[fmt.ShardIndex], name: str, dtype: Any = np.int64) -> np.ndarray:
    """One index column over all shards, as a flat array."""
    n = sum(len(ix) for ix in indexes)
    return np.fromiter((v for ix in indexes for v in ix.columns[name]), dtype=dtype, count=n)


def _concat_columns(indexes: list[fmt.ShardIndex], codec: Codec) -> dict[str, Any]:
    """The columns of :class:`ShardSet` from its shards' indexes (checked by :mod:`~shardkit.format.checks`)."""
    keys = [k for ix in indexes for k in ix.columns["key"]]
    counts = np.asarray([len(ix) for ix in indexes], dtype=np.int64)
    shard_ptr = np.zeros(len(indexes) + 1, dtype=np.int64)
    np.cumsum(counts, out=shard_ptr[1:])
    sec_ptr, sec_idx = _csr([s for ix in indexes for s in ix.columns["secondary"]])
    return {
        "keys": keys, "shard_ptr": shard_ptr, "label": _int64(indexes, "label", np.int32), "sec_ptr": sec_ptr,
        "sec_idx": sec_idx, "shard_id": np.repeat(np.arange(len(indexes), dtype=np.int32), counts),
        "wav_offset": _int64(indexes, "wav_offset"), "sample_bytes": _int64(indexes, "wav_size"),
        "meta_offset": _int64(indexes, "meta_offset"), "meta_size": _int64(indexes, "meta_size"),
        "frames": _int64(indexes, "frames"), "start": _int64(indexes, "start"),
        "source": [s for ix in indexes for s in ix.columns["source"]],
        "wav_crc32": _int64(indexes, "wav_crc32", np.uint32), "meta_crc32": _int64(indexes, "meta_crc32", np.uint32),
        "codec": {name: _int64(indexes, name, dtype) for name, dtype in codec.index_columns.items()},
    }


def _csr(secondary: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Lists of label indices → (``sec_ptr`` int64 (N+1,), ``sec_idx`` int32)."""
    lengths = np.fromiter((len(x) for x in secondary), dtype=np.int64, count=len(secondary))
    ptr = np.zeros(len(secondary) + 1, dtype=np.int64)
    np.cumsum(lengths, out=ptr[1:])
    idx = np.fromiter((j for x in secondary for j in x), dtype=np.int32, count=int(ptr[-1]))
    return ptr, idx
