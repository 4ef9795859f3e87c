"""A small, exact writer of shard sets for the read-stage tests (docs/format.md, version 1).

It writes real ustar shards (``KEY.wav`` + ``KEY.mp`` per sample), their zstd+msgpack indexes
and ``manifest.json`` from int16 numpy arrays, so the reader is tested against the contract, not
against ``shardkit.pack``. Keep it small: it is a test fixture, not a second writer.
"""

from __future__ import annotations

import hashlib
import io
import struct
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from shardkit import format as fmt

# the wav16 data member as docs/format.md §3.1 states it (written here, not taken from the codec)
WAV_HEADER_BYTES = 44
AUDIO_EXT = "wav"


@dataclass
class Sample:
    """One sample to write: ``pcm`` is int16, shape (frames,) or (frames, channels)."""

    key: str
    pcm: np.ndarray
    label: str | None = None
    secondary: list[str] = field(default_factory=list)
    source: str = ""
    start: int = 0


def wav_bytes(pcm: np.ndarray, sample_rate: int) -> bytes:
    """The canonical 44-byte RIFF/WAVE header + little-endian int16 PCM (docs/format.md §3.1)."""
    pcm = np.asarray(pcm, dtype="<i2")
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    data = pcm.tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16, 1, channels,
        sample_rate, sample_rate * channels * 2, channels * 2, 16, b"data", len(data),
    )
    assert len(header) == WAV_HEADER_BYTES
    return header + data


def _member(out: io.BytesIO, name: str, data: bytes) -> int:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid = len(data), 0o644, 0, 0, 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    out.write(info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict"))
    offset = out.tell()
    out.write(data)
    out.write(b"\0" * (-len(data) % fmt.TAR_BLOCK))
    return offset


def write_shard_set(
    root: str | Path,
    shards: Sequence[Sequence[Sample]],
    *,
    sample_rate: int = 16000,
    channels: int = 1,
    layout: dict[str, Any] | None = None,
    format_version: int = fmt.FORMAT_VERSION,
) -> Path:
    """Write ``shards`` (a list of shards, each a list of samples) as a shard set under ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    layout = layout or {"mode": "segments", "segment_seconds": 5.0, "hop_seconds": 5.0, "tail": "pad"}
    vocab = sorted({s.label for sh in shards for s in sh if s.label} |
                   {x for sh in shards for s in sh for x in s.secondary})
    where = {name: i for i, name in enumerate(vocab)}
    codec = {"codec_id": "wav16", "sample_rate": sample_rate, "channels": channels,
             "sample_width": 2, "header_bytes": WAV_HEADER_BYTES}
    entries, label_counts, total_frames, total_bytes = [], {}, 0, 0
    for number, samples in enumerate(shards):
        name = fmt.shard_name(number)
        out = io.BytesIO()
        cols: dict[str, list[Any]] = {c: [] for c in fmt.INDEX_COLUMNS}
        for s in samples:
            wav = wav_bytes(s.pcm, sample_rate)
            frames = int(s.pcm.shape[0])
            meta = msgpack.packb({
                "key": s.key, "source": s.source or f"{s.key}.ogg", "row": None,
                "primary_label": s.label, "secondary_labels": list(s.secondary),
                "sample_rate": sample_rate, "channels": channels, "frames": frames,
                "padded_frames": 0, "start_frame": s.start, "start_seconds": s.start / sample_rate,
                "duration_seconds": frames / sample_rate, "segment": 0, "segments": 1,
                "source_sample_rate": sample_rate, "source_channels": channels,
                "source_frames": frames, "source_format": "WAV/PCM_16", "extra": {},
            }, use_bin_type=True)
            wav_off = _member(out, f"{s.key}.{AUDIO_EXT}", wav)
            meta_off = _member(out, f"{s.key}.{fmt.META_EXT}", meta)
            for col, value in (
                ("key", s.key), ("wav_offset", wav_off), ("wav_size", len(wav)),
                ("meta_offset", meta_off), ("meta_size", len(meta)), ("frames", frames),
                ("label", where[s.label] if s.label else -1),
                ("secondary", [where[x] for x in s.secondary]), ("source", s.source or s.key),
                ("start", s.start), ("wav_crc32", zlib.crc32(wav)), ("meta_crc32", zlib.crc32(meta)),
            ):
                cols[col].append(value)
            if s.label:
                label_counts[s.label] = label_counts.get(s.label, 0) + 1
            total_frames += frames
        out.write(b"\0" * (2 * fmt.TAR_BLOCK))
        data = out.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        (root / name).write_bytes(data)
        index = fmt.ShardIndex(shard=name, shard_bytes=len(data), shard_sha256=sha, codec=codec,
                               vocabulary=vocab, columns=cols, format_version=format_version).to_bytes()
        (root / fmt.index_name(name)).write_bytes(index)
        entries.append({"name": name, "index": fmt.index_name(name), "samples": len(samples),
                        "frames": sum(cols["frames"]), "bytes": len(data), "sha256": sha,
                        "index_bytes": len(index), "index_sha256": hashlib.sha256(index).hexdigest()})
        total_bytes += len(data) + len(index)
    audio = {"codec": "wav16", "sample_rate": sample_rate, "channels": channels, "sample_width": 2}
    ident = fmt.dumps_json({"format_version": format_version, "audio": audio, "layout": layout,
                            "vocabulary": vocab, "shards": [e["sha256"] for e in entries]})
    n = sum(len(sh) for sh in shards)
    manifest = {
        "format": "shardkit.manifest", "format_version": format_version, "shardkit_version": "0.1.0",
        "version_id": "sk1-" + hashlib.sha256(ident).hexdigest()[:16], "complete": True,
        "audio": audio, "layout": layout, "vocabulary": vocab, "label_counts": label_counts,
        "shards": entries,
        "totals": {"samples": n, "frames": total_frames, "seconds": total_frames / sample_rate,
                   "hours": total_frames / sample_rate / 3600, "bytes": total_bytes,
                   "sources": n, "sources_packed": n},
        "pack": {}, "rejects": [], "budget": {"limit_bytes": None, "exhausted": False,
                                              "more_bytes_needed": 0},
    }
    (root / fmt.MANIFEST_NAME).write_bytes(fmt.dumps_json(manifest))
    return root


def make_set(
    root: str | Path,
    lengths: Sequence[Sequence[int]],
    *,
    labels: Sequence[str] = ("aaa", "bbb", "ccc", "ddd"),
    channels: int = 1,
    sample_rate: int = 16000,
    layout: dict[str, Any] | None = None,
    seed: int = 0,
) -> tuple[Path, dict[str, Sample]]:
    """A shard set with ``lengths[s][j]`` frames for sample j of shard s, random int16 audio,
    primary labels cycling through ``labels`` and one secondary label on every third sample.
    Returns the folder and ``{key: Sample}``."""
    rng = np.random.default_rng(seed)
    shards, by_key, n = [], {}, 0
    for s, shard_lengths in enumerate(lengths):
        samples = []
        for j, frames in enumerate(shard_lengths):
            shape = (frames,) if channels == 1 else (frames, channels)
            pcm = rng.integers(-32768, 32768, size=shape, dtype=np.int16)
            secondary = [labels[(n + 1) % len(labels)]] if n % 3 == 0 and len(labels) > 1 else []
            sample = Sample(f"src{s}/rec{j:04d}-0000", pcm, labels[n % len(labels)], secondary)
            samples.append(sample)
            by_key[sample.key] = sample
            n += 1
        shards.append(samples)
    path = write_shard_set(root, shards, sample_rate=sample_rate, channels=channels, layout=layout)
    return path, by_key


#: the layout of a recordings-mode set, for make_set(..., layout=RECORDINGS)
RECORDINGS = {"mode": "recordings", "max_seconds": 60.0}
