"""`python -m benchmarks.mel_u8 --quick` runs end to end (CI smoke; it asserts no speed, only the bound)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_quick_mel_u8_benchmark(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.mel_u8", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=230)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((out / "mel-u8.json").read_text())
    assert doc["error"]["within_bound"] and doc["error"]["samples"] > 0
    assert doc["pack"]["mel-u8"]["samples"] == doc["pack"]["wav16"]["samples"]
    assert doc["pack"]["mel-u8"]["data_member_bytes"] == 128 + 128 * (1 + 160000 // 512)
    assert "Quantisation error" in (out / "mel-u8.md").read_text()
