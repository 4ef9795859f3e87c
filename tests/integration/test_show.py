"""shardkit show: a sample's waveform and log-mel as a PNG, for wav16 and mel-u8 sets, through the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import shardkit
from shardkit import ShardSetWriter
from shardkit.errors import SampleNotFoundError, UsageError

image = pytest.importorskip("matplotlib.image")


def _png_shape(path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return image.imread(path).shape[:2]


def test_a_wav16_sample_draws_waveform_and_log_mel(packed, tmp_path):
    key = next(iter(shardkit.list_samples(packed))).key
    out = shardkit.show_sample(packed, key, tmp_path / "a.png")
    height, width = _png_shape(out)
    assert width >= 900 and height >= 550 and out.stat().st_size > 50_000  # two panels with content


def test_a_mel_u8_sample_draws_its_stored_spectrogram(tmp_path):
    mel = shardkit.MelConfig.for_rate(16000, n_mels=32, n_fft=512, hop_length=256)
    rng = np.random.default_rng(0)
    with ShardSetWriter(tmp_path / "set", sample_rate=16000, codec="mel-u8", mel=mel, vocabulary=["a"]) as w:
        w.write((rng.standard_normal(16000) * 3000).astype(np.int16), key="k0", primary_label="a")
    height, width = _png_shape(shardkit.show_sample(tmp_path / "set", "k0", tmp_path / "m.png"))
    assert width >= 900 and 250 <= height < 550  # one panel: no waveform is stored


def test_the_cli_draws_and_names_errors(packed, tmp_path):
    key = next(iter(shardkit.list_samples(packed))).key
    argv = [sys.executable, "-m", "shardkit_cli", "show", str(packed), key]
    done = subprocess.run([*argv, "-o", str(tmp_path / "c.png")], capture_output=True, text=True)
    assert done.returncode == 0 and (tmp_path / "c.png").stat().st_size > 0, done.stderr
    bad = subprocess.run([*argv, "-o", str(tmp_path / "no" / "c.png")], capture_output=True, text=True)
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr
    with pytest.raises(SampleNotFoundError):
        shardkit.show_sample(packed, "nope", tmp_path / "x.png")
    with pytest.raises(UsageError):
        shardkit.show_sample(packed, key, tmp_path / "missing" / "x.png")


def test_show_never_overwrites_by_accident(packed, tmp_path):
    """issue 22 item 1: ``show -o`` refuses an existing file without --force and a path inside the set,
    as ``cat -o`` does."""
    key = next(iter(shardkit.list_samples(packed))).key
    argv = [sys.executable, "-m", "shardkit_cli", "show", str(packed), key]
    target = tmp_path / "mine.png"
    target.write_bytes(b"mine")
    shard = packed / "shard-00000.tar"
    before = shard.read_bytes()
    for extra, needle in ((["-o", str(target)], "exists; pass force=True (--force)"),
                          (["-o", str(shard), "--force"], "inside the shard set")):
        bad = subprocess.run([*argv, *extra], capture_output=True, text=True)
        assert bad.returncode == 2 and needle in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    assert target.read_bytes() == b"mine" and shard.read_bytes() == before
    done = subprocess.run([*argv, "-o", str(target), "--force"], capture_output=True, text=True)
    assert done.returncode == 0 and target.read_bytes()[:4] == b"\x89PNG", done.stderr
