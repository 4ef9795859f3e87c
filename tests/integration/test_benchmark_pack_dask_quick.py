"""`python -m benchmarks.pack_dask --quick` runs end to end (CI smoke: it asserts no speed, only that the
engines made the same bytes and that every number of the report is there)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_pack_dask_benchmark(tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.pack_dask", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=290)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((out / "pack_dask.json").read_text())
    assert doc["engines"]["identical_bytes"]
    assert set(doc["engines"]["runs"]) == {"local-1", "dask-1", "local-2", "dask-2"}
    assert set(doc["engines"]["ratio_dask_over_local"]) == {"1", "2"}
    assert doc["overheads"]["task_overhead_ms"] > 0 and doc["overheads"]["driver_receive_mb_s"] > 0
    assert "dask / local, rate" in proc.stdout
