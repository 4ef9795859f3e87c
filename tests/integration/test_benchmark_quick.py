"""The benchmark's quick mode runs end to end and writes its JSON (CI smoke; no speed is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

METHODS = {
    "cat", "shardkit-segments", "shardkit-recordings", "webdataset", "webdataset-frombuffer",
    "litdata", "mosaicml-streaming",
    "baseline-whole-soundfile", "baseline-seek-soundfile", "baseline-whole-torchaudio",
    "baseline-seek-torchaudio", "baseline-whole-torchcodec", "baseline-seek-torchcodec",
}
#: run here whatever is installed (the others are reported as skipped, with the reason)
ALWAYS_RUN = {"cat", "shardkit-segments", "shardkit-recordings", "webdataset", "webdataset-frombuffer",
              "baseline-whole-soundfile", "baseline-seek-soundfile"}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_quick_benchmark_writes_its_results(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=230)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    doc = json.loads((out / "results.json").read_text())
    results = doc["results"]
    assert {r["method"] for r in results} == METHODS
    assert not [r for r in results if r["status"] == "error"], [r["reason"] for r in results if r["status"] == "error"]
    for name in ALWAYS_RUN:
        assert {r["workers"] for r in results if r["method"] == name and r["status"] == "ok"} >= (
            {0} if name == "cat" else {0, 2}), name
    for r in results:
        assert r["status"] in ("ok", "skipped")
        if r["status"] == "skipped":
            assert r["reason"]
    assert {"decode_floor", "recordings", "segments"} <= set(doc["pack"])
    assert "shardkit-segments-256MB" in doc["rss"]
    assert doc["targets"] and (out / "benchmarks.md").exists()
