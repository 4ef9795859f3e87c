"""examples/pseudo_label_round.py runs one round (teacher → grid predictions → add_labels → student on the
layer's targets) on the demo corpus on CPU with real DataLoader workers."""

import subprocess
import sys
from pathlib import Path

import pytest

import shardkit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pseudo_label_round.py"


@pytest.mark.timeout(600)
def test_pseudo_label_round(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLE), str(tmp_path / "work"), "--files", "12", "--epochs", "1",
                           "--workers", "2"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "teacher epoch 0" in out and "predicted" in out and "student epoch 0: soft-target loss" in out
    new = tmp_path / "work" / "sets" / "soundscapes-pl"
    (layer,) = shardkit.list_labels(new)
    assert layer.name == "pl" and layer.kind == "windows" and layer.rows > 0
    assert not list(new.glob("*.tar")) and shardkit.verify(new).ok
