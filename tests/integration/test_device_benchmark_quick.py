"""The device-stage benchmark's quick mode runs end to end on CPU and writes its JSON and table (no speed is
asserted), and the committed device results render into the docs page that is in the repository."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report_device

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_quick_device_benchmark_writes_its_results(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.device", "--quick", "--device", "cpu", "--threads", "1",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=230)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "device-train" in proc.stdout and "baseline" in proc.stdout      # the printed table

    doc = json.loads((out / "device-cpu.json").read_text())
    assert doc["config"]["device"] == "cpu" and doc["config"]["threads"] == [1]
    got = {(r["method"], r["workers"]) for r in doc["results"]}
    assert got == {("device-train", 0), ("device-eval", 0), ("mel-u8-train", 0), ("mel-u8-eval", 0), ("baseline", 0),
                   ("baseline", 2)}
    for r in doc["results"]:
        assert "error" not in r, r
        assert r["clips_per_s"] > 0 and r["ms_per_batch"] > 0
    assert next(r["shape"] for r in doc["results"] if r["method"] == "baseline") == [8, 128, 63]
    assert set(doc["ratios"]) == {f"device-{m}/baseline-{b}" for m in ("train", "eval") for b in ("1proc", "DLx2")}
    assert "gpu_memory" not in doc
    md = (out / "device-cpu.md").read_text()
    assert "| device-train |" in md and "quick mode" in md


def test_committed_device_results_match_the_docs_page():
    docs = report_device.load_device_results()
    page = ROOT / "docs" / "benchmarks-device.md"
    assert page.read_text() == report_device.device_markdown(docs), (
        "docs/benchmarks-device.md is stale: run `python -m benchmarks.device --render`")
    for doc in docs:
        assert not doc["config"]["quick"]
