"""The benchmark's quick mode runs end to end and writes its JSON (CI smoke; no speed is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

METHODS = {
    "cat", "shardkit-segments", "shardkit-recordings", "shardkit-segments-targets", "shardkit-recordings-targets",
    "webdataset", "webdataset-frombuffer", "litdata", "mosaicml-streaming",
    "baseline-whole-soundfile", "baseline-seek-soundfile", "baseline-whole-torchaudio",
    "baseline-seek-torchaudio", "baseline-whole-torchcodec", "baseline-seek-torchcodec",
    "lance-take", "lance-scan", "hf-arrow", "hf-webdataset",  # peers: skipped with the reason where not installed
}
#: run here whatever is installed (the others are reported as skipped, with the reason)
ALWAYS_RUN = {"cat", "shardkit-segments", "shardkit-recordings", "shardkit-segments-targets",
              "shardkit-recordings-targets", "webdataset", "webdataset-frombuffer",
              "baseline-whole-soundfile", "baseline-seek-soundfile"}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_benchmark_writes_its_results(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=870)
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
    cold = doc["cold"]
    shardkit_cold = {f"shardkit-{s}-{m}" for s in ("segments", "recordings") for m in ("default", "off", "fadvise")}
    assert {r["method"] for r in cold["results"]} == {   # cold, and warm (":warm", the read-ahead A/B)
        "cat", "presplit-wav", "webdataset", *shardkit_cold, *(f"{m}:warm" for m in shardkit_cold)}
    assert all(r["clips_per_s"] > 0 and r["vs_cat"] > 0 for r in cold["results"])
    assert cold["target"]["met"] in (True, False) and "### Cold page cache" in (out / "benchmarks.md").read_text()
    recipes = doc["recipes"]  # balanced / mixed epochs against a plain shuffled one
    assert [c["case"] for c in recipes["cases"]] == [
        "warm, 1 process", "warm, 1 process, clips per CPU second", "warm, 2 DataLoader workers",
        "warm, 2 DataLoader workers, clips per CPU second"]
    assert all(r["runs"][0] > 0 for c in recipes["cases"] for r in c["rows"])
    assert "### Training recipes" in (out / "benchmarks.md").read_text()
    remote = doc["remote"]  # object storage: rows from the HTTP range server on loopback, or skipped with the reason
    assert remote.get("skipped") or {(r["method"], r["status"]) for r in remote["results"]} == {
        (f"segments-{w}", "ok") for w in ("local", "http-0ms", "http-10ms", "http-50ms")}
    assert any(t["target"].startswith("object storage (the HTTP range server") for t in doc["targets"])
    assert "### Object storage" in (out / "benchmarks.md").read_text()
    assert doc["targets"] and (out / "benchmarks.md").exists()
    assert any(t["target"].startswith("targets= costs ≤ 10 %") and t["value"] for t in doc["targets"])
    md = (out / "benchmarks.md").read_text()
    assert "## Targets" in md and "Issue-5" not in md
    assert "0.92–0.97" not in md and "Tried on this machine" not in md   # no conclusions typed into the code


def test_rendering_the_docs_page_keeps_its_hand_written_section():
    from benchmarks.report_read import HAND_WRITTEN_BEGIN, HAND_WRITTEN_END, hand_written, markdown

    page = (ROOT / "docs" / "benchmarks.md").read_text()
    notes = hand_written(page)
    assert notes and notes.startswith(HAND_WRITTEN_BEGIN) and notes.endswith(HAND_WRITTEN_END)
    assert "hand-written, not generated" in notes
    assert hand_written("# a page without notes\n") is None
    doc = {"machine": {"cpu_model": "x", "cpus_usable": 2, "cpu_count": 2, "mem_total_gib": 1, "os": "y",
                       "python": "3", "versions": {}},
           "corpus": {"description": "d", "files": 1, "hours": 0.1, "encoded_bytes": 1, "seconds_min": 1,
                      "seconds_max": 2, "seconds_median": 1, "formats": {}, "sample_rates": {}, "stereo_files": 0},
           "config": {"quick": True, "repeats": 1, "seconds": 1, "batch": 8, "baseline_batch": 8, "pack_repeats": 1},
           "load": {"start": 0, "end": 0}, "results": [], "ratios": {}, "rss": {}, "targets": [],
           "pack": {"decode_floor": {"workers": 2, "hours_per_min": 1, "elapsed_s": 1, "workers_cpu_s": 1}}}
    rendered = markdown(doc, "results.json", None, notes)
    assert hand_written(rendered) == notes
    assert rendered.index("## Targets") < rendered.index(HAND_WRITTEN_BEGIN)
    assert notes not in markdown(doc, "results.json", None)
