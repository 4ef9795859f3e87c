"""The end-to-end benchmark's quick mode trains on CPU through every pipeline, each yielding the same clips per
epoch, and writes its JSON, table and plot (no speed is asserted); the committed results render into the page."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report_e2e

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ["seed-ogg", "seed-presplit", "shardkit-wav16", "shardkit-mel-u8", "ceiling"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_e2e_benchmark_same_epoch_for_every_pipeline(tmp_path):
    pytest.importorskip("torchvision")
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.e2e", "--quick", "--device", "cpu", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=590)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    doc = json.loads((out / "e2e-cpu-quick.json").read_text())
    assert doc["config"]["device"] == "cpu" and doc["config"]["quick"]
    assert len(doc["pinning"]["pinned_to"]) == min(2, doc["pinning"]["usable_before"])
    for case in ("whole", "frozen"):
        rows = [r for r in doc["results"] if r["case"] == case]
        assert [r["pipeline"] for r in rows] == PIPELINES
        for r in rows:
            assert "error" not in r, r
            assert r["steps"] >= 3 and r["steps_per_s"] > 0 and r["loss_finite"]
        counted = {r["pipeline"]: r["epoch_clips_counted"] for r in rows}
        assert len(set(counted.values())) == 1, counted            # every pipeline: the same clips per epoch
        assert set(counted.values()) == {rows[0]["clips_per_epoch"]}
        assert report_e2e.busy(doc, case, "ceiling") == 1.0
    frozen = next(r for r in doc["results"] if r["case"] == "frozen")
    whole = next(r for r in doc["results"] if r["case"] == "whole")
    assert frozen["trainable_params"] < whole["trainable_params"] / 100     # only the head trains
    assert {t["verdict"] for t in doc["targets"]} <= {"met", "missed"}
    assert (out / "e2e-cpu-quick.png").stat().st_size > 10_000
    assert "| shardkit-wav16 |" in (out / "e2e-cpu-quick.md").read_text()


def test_committed_e2e_results_match_the_docs_page(tmp_path):
    """docs/benchmarks-e2e.md's generated part is what the committed JSON renders to, and the page keeps its
    hand-written interpretation outside the markers."""
    page = ROOT / "docs" / "benchmarks-e2e.md"
    copy = tmp_path / "page.md"
    copy.write_text(page.read_text())
    report_e2e.render_docs(ROOT / "benchmarks" / "results", page=copy, png=tmp_path / "e2e.png")
    assert copy.read_text() == page.read_text()
    assert "## Reading the numbers" in page.read_text()
    assert (tmp_path / "e2e.png").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_sim_benchmark_same_epoch_for_every_pipeline(tmp_path):
    """--device sim: every pipeline feeds the simulated accelerator, yields the same clips per epoch and the
    same model-input shape; the device stages are counted (no speed is asserted)."""
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.e2e", "--device", "sim", "--quick", "--step-ms", "10,25",
                           "--runs", "1", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=590)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    doc = json.loads((out / "sim-e2e-quick.json").read_text())
    rows = doc["runs"][0]["results"]
    assert [r["pipeline"] for r in rows] == [p for p in PIPELINES for _ in (10, 25)]
    for r in rows:
        assert "error" not in r, r
        assert r["steps"] >= 3 and 0 < r["busy"] and r["ideal_ms"] >= r["step_ms"] + doc["config"]["host_ms"]
    assert len({r["epoch_clips_counted"] for r in rows}) == 1 == len({tuple(r["model_input"]) for r in rows})
    assert {r["epoch_clips_counted"] for r in rows} == {rows[0]["clips_per_epoch"]}
    stages = {r["pipeline"]: r["stage_ops"] for r in rows}
    assert stages["seed-ogg"] == stages["ceiling"] == 0 < stages["seed-presplit"] < stages["shardkit-wav16"]
    assert {t["verdict"] for t in doc["targets"]} <= {"met", "missed"}
    assert "| shardkit-mel-u8 | 25 |" in proc.stdout


def test_committed_sim_results_match_the_docs_page(tmp_path):
    """The page's simulated-accelerator section is what benchmarks/results/sim-e2e*.json renders to."""
    from benchmarks import report_sim

    page = ROOT / "docs" / "benchmarks-e2e.md"
    copy = tmp_path / "page.md"
    copy.write_text(page.read_text())
    report_sim.render_sim_docs(ROOT / "benchmarks" / "results", page=copy, png=tmp_path / "e2e-sim.png")
    assert copy.read_text() == page.read_text()
    assert report_sim.BEGIN in page.read_text() and "Why `--host-ms 3` by default" in page.read_text()
