"""examples/birdclef_train.py trains for an epoch on a wav16 and on a mel-u8 shard set (CPU, real workers)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

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


def test_example_resumes_with_the_same_augmentations(packed, tmp_path):
    """Killed (SIGKILL) after its first mid-epoch checkpoint and run again, the example ends with the weights
    of the uninterrupted run: same batches, same augmentations (DevicePipeline's state), same optimizer."""
    def command(ckpt):
        return [sys.executable, str(EXAMPLE), str(packed), "--epochs", "2", "--workers", "2", "--batch-size", "4",
                "--crop-seconds", "1", "--checkpoint", str(ckpt), "--save-every", "1"]

    whole = subprocess.run(command(tmp_path / "whole.pt"), capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr[-2000:]
    ckpt = tmp_path / "cut.pt"
    proc = subprocess.Popen(command(ckpt), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    cut = torch.load(ckpt, weights_only=True)
    assert cut["epoch"] == 0 and 0 < cut["data"]["consumed"] < 12
    again = subprocess.run(command(ckpt), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "resumed from" in again.stdout, again.stderr[-2000:]
    a, b = torch.load(tmp_path / "whole.pt", weights_only=True), torch.load(ckpt, weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name
