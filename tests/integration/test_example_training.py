"""examples/birdclef_train.py trains for an epoch on a wav16 and on a mel-u8 shard set (CPU, real workers)."""

import subprocess
import sys
from pathlib import Path

import pytest

import shardkit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "birdclef_train.py"


@pytest.mark.parametrize("codec", ["wav16", "mel-u8"])
def test_example_trains(codec, corpus, packed, tmp_path):
    shards = packed
    if codec == "mel-u8":
        shards = tmp_path / "mel"
        shardkit.pack(corpus[0], shards, metadata=corpus[1], options=shardkit.PackOptions(codec="mel-u8"))
    proc = subprocess.run([sys.executable, str(EXAMPLE), str(shards), "--epochs", "2", "--workers", "2",
                           "--batch-size", "4", "--crop-seconds", "2"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2 and "val loss" in lines[-1]
