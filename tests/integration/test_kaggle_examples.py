"""examples/kaggle/: pack_and_publish.py stages a set in scratch under a budget and publishes it (the real
kaggle client, the fake Kaggle service); train.py then trains an epoch in 2 workers on what the server
stored, mounted read-only as a notebook input."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from kaggle_fake import FakeKaggle

pytest.importorskip("kaggle")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "kaggle"


def test_pack_publish_then_train(corpus, tmp_path):
    with FakeKaggle(tmp_path / "server") as fake:
        proc = subprocess.run([sys.executable, str(EXAMPLES / "pack_and_publish.py"), str(corpus[0]), "--metadata",
                               str(corpus[1]), "--id", "tester/bird-shards", "--title", "Bird shards v1",
                               "--scratch", str(tmp_path / "scratch"), "--budget", "20MB", "--workers", "2"],
                              capture_output=True, text=True, env=fake.env(tmp_path / "home"), timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "created tester/bird-shards" in proc.stdout
        stored = fake.files("tester/bird-shards")
    mount = tmp_path / "input" / "datasets" / "tester" / "bird-shards"
    shutil.copytree(stored, mount)
    for p in [mount, *mount.iterdir()]:
        p.chmod(stat.S_IRUSR | stat.S_IXUSR if p.is_dir() else stat.S_IRUSR)
    try:
        proc = subprocess.run([sys.executable, str(EXAMPLES / "train.py"), "--dataset", "tester/bird-shards",
                               "--input-root", str(tmp_path / "input"), "--out", str(tmp_path / "ckpt"),
                               "--epochs", "1", "--workers", "2", "--batch-size", "4", "--crop-seconds", "1",
                               "--device", "cpu"], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "epoch 0: loss" in proc.stdout and (tmp_path / "ckpt" / "model.pt").is_file()
    finally:
        for p in [mount, *mount.iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)
