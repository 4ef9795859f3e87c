"""A finished shard set on disk, as flat numpy columns over all of its samples.

:class:`ShardSet` reads ``manifest.json`` and every shard index once (docs/format.md §4–§6) and
keeps one row per sample in shard order. Sample ``i`` of the set is row ``i`` of every column.
Audio is then read by byte offset with ``os.pread``; no tar header is parsed.

File access goes through :class:`LocalFiles` (the one seam a remote store would replace).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from shardkit import format as fmt
from shardkit.errors import IndexError_, IntegrityError, ManifestError, SampleNotFoundError, ShardReadError

log = logging.getLogger(__name__)

#: Shard files kept open per process; the least recently used one is closed beyond this.
MAX_OPEN_SHARDS = 128


class LocalFiles:
    """Access to the files of one shard-set folder on the local file system.

    A remote backend (fsspec) would implement the same four methods.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / name

    def read_bytes(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def size(self, name: str) -> int:
        """Bytes of ``name``; raises FileNotFoundError when it is missing."""
        return os.stat(self.root / name).st_size

    def open_fd(self, name: str) -> int:
        """A read-only OS file descriptor for positional reads (``os.pread``/``os.preadv``)."""
        return os.open(self.root / name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))


def key_hashes(keys: list[str]) -> np.ndarray:
    """uint64 (N,): the first 8 bytes of blake2b(key, UTF-8) read little-endian; a stable id per key."""
    raw = b"".join(hashlib.blake2b(k.encode("utf-8")).digest()[:8] for k in keys)
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64)


class ShardSet:
    """All samples of a shard set as columns; cheap to pickle, reads by byte offset.

    Columns (N samples, S shards):

    - ``shard_id`` int32 (N,): shard number of each sample; ``shard_ptr`` int64 (S+1,): first row of
      each shard (rows of shard s are ``shard_ptr[s]:shard_ptr[s+1]``)
    - ``wav_offset`` int64 (N,): byte offset of the data member (``.wav``, or ``.npy`` for mel-u8) in its
      shard; ``pcm_offset`` = ``wav_offset`` + header bytes (44 or 128); ``sample_bytes`` int64: bytes
      of the data member (header + payload)
    - ``meta_offset``, ``meta_size`` int64 (N,): the ``.mp`` member (msgpack)
    - ``frames`` int64 (N,): stored frames (audio samples per channel; spectrogram frames for mel-u8)
    - ``label`` int32 (N,): primary label, an index into ``vocabulary``, −1 for none
    - ``sec_ptr`` int64 (N+1,), ``sec_idx`` int32: secondary labels in CSR form (sample i has
      ``sec_idx[sec_ptr[i]:sec_ptr[i+1]]``)
    - ``keys`` list[str]; ``key_hash`` uint64 (N,): see :func:`key_hashes`
    """

    def __init__(self, root: Path, manifest: dict[str, Any], columns: dict[str, Any],
                 files: LocalFiles | None = None) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self.files = files or LocalFiles(self.root)
        self.vocabulary: list[str] = list(manifest["vocabulary"])
        audio = manifest["audio"]
        self.sample_rate: int = int(audio["sample_rate"])
        self.channels: int = int(audio["channels"])
        #: ``"wav16"`` or ``"mel-u8"`` (format v2); see :attr:`frame_bytes` and :attr:`mel`.
        self.codec: str = fmt.codec_of(audio)
        #: bytes of one stored frame: ``2 × channels`` (wav16) or ``n_mels`` (mel-u8, frame-major)
        self.frame_bytes: int = 2 * self.channels if self.codec == "wav16" else int(audio["mel"]["n_mels"])
        #: the front-end settings of a mel-u8 set (``MelConfig.to_dict()``), ``None`` for wav16
        self.mel: dict[str, Any] | None = dict(audio["mel"]) if self.codec == "mel-u8" else None
        #: seconds of audio per stored frame (``1/sample_rate``, or ``hop_length/sample_rate`` for mel-u8)
        self.seconds_per_frame: float = fmt.seconds_per_frame(audio)
        self.mode: str = str((manifest.get("layout") or {}).get("mode", "segments"))
        self.version_id: str = str(manifest.get("version_id", ""))
        self.shard_names: list[str] = [e["name"] for e in manifest["shards"]]
        self.keys: list[str] = columns["keys"]
        self.shard_id: np.ndarray = columns["shard_id"]
        self.shard_ptr: np.ndarray = columns["shard_ptr"]
        self.wav_offset: np.ndarray = columns["wav_offset"]
        #: byte offset of each sample's payload (PCM, or the frame-major uint8 spectrogram)
        self.pcm_offset: np.ndarray = self.wav_offset + fmt.CODECS[self.codec][1]
        self.sample_bytes: np.ndarray = columns["sample_bytes"]
        self.meta_offset: np.ndarray = columns["meta_offset"]
        self.meta_size: np.ndarray = columns["meta_size"]
        self.frames: np.ndarray = columns["frames"]
        self.label: np.ndarray = columns["label"]
        self.sec_ptr: np.ndarray = columns["sec_ptr"]
        self.sec_idx: np.ndarray = columns["sec_idx"]
        #: mel-u8 only: float32 (N, 2) dB range ``[q_lo, q_hi]`` of each sample's quantisation
        self.q_range: np.ndarray | None = columns.get("q_range")
        self.key_hash: np.ndarray = key_hashes(self.keys)
        self._reset_handles()

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ShardSet:
        """Open the shard set at ``path`` (its folder or its ``manifest.json``).

        Checks the manifest's and every index's format version, that each index belongs to the
        manifest (vocabulary, codec, sample count) and that each shard's size is what its index
        says. Raises :class:`ManifestError`, :class:`UnsupportedVersionError`, :class:`IndexError_`,
        :class:`ShardReadError` (a shard file is missing) or :class:`IntegrityError` (size mismatch).
        """
        root = fmt.manifest_root(path)
        manifest = fmt.load_manifest(path)
        files = LocalFiles(root)
        where = root / fmt.MANIFEST_NAME
        vocab = list(manifest["vocabulary"])
        audio = manifest["audio"]
        codec = fmt.codec_of(audio)
        if codec not in fmt.CODECS:
            raise ManifestError(f"{where}: codec {codec!r} is not one this shardkit reads ({sorted(fmt.CODECS)}); "
                                "upgrade shardkit (pip install -U shardkit)")
        if (codec == "wav16" and int(audio.get("sample_width", 2)) != 2) or (
                codec == "mel-u8" and not isinstance(audio.get("mel"), dict)):
            raise ManifestError(f"{where}: the manifest's audio map is not valid for codec {codec}: {audio}")
        frame_bytes = 2 * int(audio["channels"]) if codec == "wav16" else int(audio["mel"]["n_mels"])
        cols: dict[str, list[Any]] = {c: [] for c in (
            "wav_offset", "wav_size", "meta_offset", "meta_size", "frames", "label", "q_lo", "q_hi")}
        keys: list[str] = []
        secondary: list[list[int]] = []
        counts: list[int] = []
        for entry in manifest["shards"]:
            name = entry["name"]
            index_path = entry.get("index") or fmt.index_name(name)
            try:
                data = files.read_bytes(index_path)
            except FileNotFoundError as exc:
                raise IndexError_(f"{files.path(index_path)}: shard index is missing; "
                                  f"run 'shardkit verify {root}' on the shard set") from exc
            index = fmt.ShardIndex.from_bytes(data, files.path(index_path))
            _check_index(index, name, vocab, audio, files.path(index_path))
            try:
                size = files.size(name)
            except FileNotFoundError as exc:
                raise ShardReadError(f"{files.path(name)}: shard is missing (listed in {where}); "
                                     "re-download or re-pack the shard set") from exc
            if size != index.shard_bytes:
                raise IntegrityError(f"{files.path(name)}: shard has {size} bytes, its index says "
                                     f"{index.shard_bytes}; the shard is truncated or was replaced. "
                                     f"Run 'shardkit verify {root}' and re-download or re-pack it")
            if "samples" in entry and int(entry["samples"]) != len(index):
                raise IntegrityError(f"{files.path(index_path)}: index lists {len(index)} samples, "
                                     f"the manifest says {entry['samples']} for {name}")
            c = index.columns
            for col, src in (("wav_offset", "wav_offset"), ("wav_size", "wav_size"),
                             ("meta_offset", "meta_offset"), ("meta_size", "meta_size"),
                             ("frames", "frames"), ("label", "label")):
                cols[col].extend(c[src])
            if codec == "mel-u8":
                cols["q_lo"].extend(c["q_lo"])
                cols["q_hi"].extend(c["q_hi"])
            keys.extend(c["key"])
            secondary.extend(c["secondary"])
            counts.append(len(index))
            _check_extents(c, size, frame_bytes, fmt.CODECS[codec][1], files.path(name))

        n = len(keys)
        sec_len = np.fromiter((len(x) for x in secondary), dtype=np.int64, count=n)
        sec_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(sec_len, out=sec_ptr[1:])
        sec_idx = np.fromiter((j for x in secondary for j in x), dtype=np.int32, count=int(sec_ptr[-1]))
        label = np.asarray(cols["label"], dtype=np.int32).reshape(n)
        bad_primary = n > 0 and (label.min() < -1 or label.max() >= len(vocab))
        bad_secondary = sec_idx.size > 0 and (sec_idx.min() < 0 or sec_idx.max() >= len(vocab))
        if bad_primary or bad_secondary:
            raise IndexError_(f"{root}: a shard index holds a label outside the vocabulary "
                              f"({len(vocab)} labels); run 'shardkit verify {root}'")
        shard_ptr = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(np.asarray(counts, dtype=np.int64), out=shard_ptr[1:])
        columns = {
            "keys": keys,
            "shard_id": np.repeat(np.arange(len(counts), dtype=np.int32), counts),
            "shard_ptr": shard_ptr,
            "wav_offset": np.asarray(cols["wav_offset"], dtype=np.int64).reshape(n),
            "sample_bytes": np.asarray(cols["wav_size"], dtype=np.int64).reshape(n),
            "meta_offset": np.asarray(cols["meta_offset"], dtype=np.int64).reshape(n),
            "meta_size": np.asarray(cols["meta_size"], dtype=np.int64).reshape(n),
            "frames": np.asarray(cols["frames"], dtype=np.int64).reshape(n),
            "label": label,
            "sec_ptr": sec_ptr,
            "sec_idx": sec_idx,
        }
        if codec == "mel-u8":
            columns["q_range"] = np.stack([np.asarray(cols["q_lo"], dtype=np.float32).reshape(n),
                                           np.asarray(cols["q_hi"], dtype=np.float32).reshape(n)], axis=1)
        out = cls(root, manifest, columns, files)
        if len(set(keys)) != n:
            raise IndexError_(f"{root}: sample keys are not unique across the shard set; "
                              f"run 'shardkit verify {root}'")
        log.debug("opened %s: %d samples in %d shards", root, n, len(counts))
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
            hint = ""
            if "." in key:
                hint = " (keys have no extension: drop the '.wav'/'.mp')"
            raise SampleNotFoundError(
                f"{self.root}: no sample with key {key!r} among {len(self)} samples{hint}; "
                f"keys look like {self.keys[0]!r}" if self.keys else
                f"{self.root}: no sample with key {key!r}: the shard set is empty"
            ) from None

    # -- reading ---------------------------------------------------------------------------------

    def fd(self, shard: int) -> int:
        """An open read-only descriptor of shard ``shard`` in this process (kept open, LRU-capped).

        Raises :class:`ShardReadError` when the file cannot be opened.
        """
        if self._pid != os.getpid():  # inherited through fork: the parent's table is not ours
            self._reset_handles()
        fd = self._fds.get(shard)
        if fd is not None:
            self._fds.move_to_end(shard)
            return fd
        name = self.shard_names[shard]
        try:
            fd = self.files.open_fd(name)
        except OSError as exc:
            raise ShardReadError(f"{self.files.path(name)}: cannot open shard ({exc.strerror or exc}); "
                                 f"re-download or re-pack the shard set, or run 'shardkit verify "
                                 f"{self.root}'") from exc
        self._fds[shard] = fd
        while len(self._fds) > MAX_OPEN_SHARDS:
            _, old = self._fds.popitem(last=False)
            os.close(old)
        return fd

    def _pread(self, i: int, offset: int, size: int) -> bytes:
        shard = int(self.shard_id[i])
        try:
            data = os.pread(self.fd(shard), size, offset)
        except OSError as exc:
            if isinstance(exc, ShardReadError):
                raise
            raise self.read_error(i, f"read failed ({exc})") from exc
        if len(data) != size:
            raise self.read_error(i, f"short read: {len(data)} of {size} bytes at offset {offset}")
        return data

    def read_error(self, i: int, what: str) -> ShardReadError:
        """A :class:`ShardReadError` naming the shard and sample ``i`` and what to do."""
        name = self.shard_names[int(self.shard_id[i])]
        return ShardReadError(
            f"{self.files.path(name)}: sample {self.keys[i]!r}: {what}; the shard is truncated or "
            f"changed since it was indexed. Run 'shardkit verify {self.root}', then re-download or "
            "re-pack the shard set (or pass on_error='skip' to skip such samples)")

    def read_wav_bytes(self, i: int) -> bytes:
        """The whole data member of sample ``i``: a ``.wav`` file (44-byte header + int16 PCM), or for
        mel-u8 sets an ``.npy`` file (``numpy.load`` gives uint8 ``(n_mels, frames)``)."""
        return self._pread(i, int(self.wav_offset[i]), int(self.sample_bytes[i]))

    def read_meta(self, i: int) -> dict[str, Any]:
        """The decoded ``.mp`` member (msgpack) of sample ``i`` (docs/format.md §3.2)."""
        return msgpack.unpackb(self._pread(i, int(self.meta_offset[i]), int(self.meta_size[i])),
                               raw=False, strict_map_key=False)

    def read_pcm(self, i: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``[start, stop)`` of sample ``i`` (clipped to the sample) as int16.

        Shape (frames,) for mono sets, (frames, channels) otherwise; no header is parsed. For a mel-u8
        set: uint8 ``(n_mels, frames)`` of the quantised spectrogram (dequantise with :attr:`q_range`).
        """
        frames = int(self.frames[i])
        stop = frames if stop is None else min(max(int(stop), 0), frames)
        start = min(max(int(start), 0), stop)
        step = self.frame_bytes
        data = self._pread(i, int(self.pcm_offset[i]) + start * step, (stop - start) * step)
        if self.codec == "mel-u8":
            return np.frombuffer(data, dtype=np.uint8).reshape(stop - start, step).T
        pcm = np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)
        return pcm if self.channels == 1 else pcm.reshape(-1, self.channels)

    # -- lifetime --------------------------------------------------------------------------------

    def _reset_handles(self) -> None:
        self._fds: OrderedDict[int, int] = OrderedDict()
        self._pid = os.getpid()
        self._key_rows: dict[str, int] | None = None

    def close(self) -> None:
        """Close the shard files this process opened (reading again reopens them)."""
        if getattr(self, "_pid", None) == os.getpid():
            for fd in self._fds.values():
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fds = OrderedDict()

    def __enter__(self) -> ShardSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_fds", "_pid", "_key_rows"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_handles()


def _check_index(index: fmt.ShardIndex, name: str, vocab: list[str], audio: dict[str, Any],
                 where: Path) -> None:
    if index.shard != name:
        raise IndexError_(f"{where}: index is for shard {index.shard!r}, the manifest lists it for {name!r}")
    if index.vocabulary != vocab:
        raise IndexError_(f"{where}: index vocabulary differs from the manifest's; the shard set mixes "
                          "files of different packs. Re-pack or re-download it")
    codec = index.codec
    codec_id = fmt.codec_of(audio)
    header = fmt.CODECS[codec_id][1]
    same = (codec.get("codec_id") == codec_id and int(codec.get("sample_rate", -1)) == int(audio["sample_rate"])
            and int(codec.get("channels", -1)) == int(audio["channels"])
            and int(codec.get("header_bytes", header)) == header)
    if codec_id == "mel-u8":
        same = same and codec.get("mel") == audio.get("mel")
    if not same:
        raise IndexError_(f"{where}: index codec {codec} does not match the manifest's audio {audio}")


def _check_extents(c: dict[str, list[Any]], size: int, frame_bytes: int, header: int, where: Path) -> None:
    wav_off = np.asarray(c["wav_offset"], dtype=np.int64)
    wav_size = np.asarray(c["wav_size"], dtype=np.int64)
    frames = np.asarray(c["frames"], dtype=np.int64)
    meta_end = np.asarray(c["meta_offset"], dtype=np.int64) + np.asarray(c["meta_size"], dtype=np.int64)
    if len(wav_off) and (
        np.any(wav_size != header + frames * frame_bytes)
        or np.any(wav_off < 0) or np.any(wav_off + wav_size > size) or np.any(meta_end > size)
    ):
        raise IndexError_(f"{where}: index offsets or sizes do not fit the shard "
                          f"({size} bytes, {frame_bytes} bytes per frame); run 'shardkit verify'")
