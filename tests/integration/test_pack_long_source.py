"""A source long enough to be streamed (:data:`shardkit.ingest.decode.STREAM_ABOVE_BYTES`) packs to
the same bytes with 1 and 2 workers as when it is decoded whole, also when the workers' spill is read
back one sample at a time."""

from __future__ import annotations

import hashlib

import numpy as np
import soundfile as sf

import shardkit
from shardkit import PackOptions
from shardkit.ingest import decode
from shardkit.write import workers


def _hashes(out):
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(out.iterdir())
            if f.suffix in (".tar", ".index")}


def test_long_source_same_bytes_any_workers(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    rate, seconds = 48000, 620  # 620 s at 32 kHz mono: 39.7 MB of int16 > STREAM_ABOVE_BYTES
    t = np.arange(rate * 10) / rate
    block = (0.2 * np.sin(2 * np.pi * 440 * t)[:, None] * [1.0, 0.5]).astype(np.float32)
    with sf.SoundFile(src / "long.flac", "w", rate, 2, format="FLAC", subtype="PCM_16") as f:
        for _ in range(seconds // 10):
            f.write(block)
    (src / "short.flac").write_bytes(b"")  # a reject among them
    opts = PackOptions(mode="recordings", max_seconds=120, shard_size="64MB")
    shardkit.pack(src, tmp_path / "streamed1", options=opts)
    monkeypatch.setattr(workers, "SPILL_READ_WHOLE_BYTES", 1 << 20)
    shardkit.pack(src, tmp_path / "streamed2", options=opts, workers=2)
    monkeypatch.setattr(decode, "STREAM_ABOVE_BYTES", 1 << 40)
    shardkit.pack(src, tmp_path / "whole", options=opts)
    whole = _hashes(tmp_path / "whole")
    assert len(whole) >= 2
    assert _hashes(tmp_path / "streamed1") == whole
    assert _hashes(tmp_path / "streamed2") == whole
    assert not list((tmp_path / "streamed2").glob("*.tmp"))
