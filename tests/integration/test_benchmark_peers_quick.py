"""benchmarks.peers converts the same clips for Lance and Hugging Face datasets and reads every peer's shuffled
batches next to ShardDataset (a smoke run on a tiny set; no speed is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from read_fixtures import make_set

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_peers_benchmark_reads_every_peer(tmp_path):
    pytest.importorskip("lance")
    pytest.importorskip("datasets")
    seg, _ = make_set(tmp_path / "seg", [[160_000] * 12], sample_rate=32000)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.peers", "--segments", str(seg), "--out", str(out),
                           "--seconds", "0.2", "--repeats", "1", "--batch", "4", "--workers", "0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=590)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((out / "peers.json").read_text())
    rows = {r["method"]: r for r in doc["rows"]}
    assert set(rows) == {"cat", "shardkit-segments", "lance-take", "lance-scan", "hf-arrow", "hf-webdataset"}
    for name, r in rows.items():
        assert r["status"] == "ok" and min(r["runs"]) > 0, (name, r)
    assert rows["shardkit-segments"]["vs_shardkit"] == [1.0, 1.0]
    assert doc["versions"]["lance"] != "not installed" and doc["clips"] == 12
    assert "| lance-take" in proc.stdout
