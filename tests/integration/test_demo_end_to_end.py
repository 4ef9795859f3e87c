"""``run_demo`` end to end on a small corpus: make, pack, stream through a DataLoader and the device stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from shardkit.demo import make_demo_corpus, plan_demo_corpus, run_demo
from shardkit.demo.run import CROPS


def test_run_demo_end_to_end_on_a_small_corpus(tmp_path: Path) -> None:
    make_demo_corpus(tmp_path / "corpus", n_files=5, seed=1)  # run_demo reuses a corpus it finds
    report = run_demo(tmp_path, workers=0, epochs=2, batch_size=4)
    assert report.corpus_files == 5 and report.rejects == 0
    assert report.shards >= 1 and report.shard_bytes > 0
    assert report.packed_hours == pytest.approx(report.corpus_hours, rel=1e-3)
    samples = len(plan_demo_corpus(n_files=5, seed=1)) + 1  # the one long file gives two 60 s chunks
    assert report.clips_streamed == 2 * samples * CROPS
    assert report.mel_shape == (4, 128, 313)
    assert report.reader_clips_per_s > 0 and report.mel_clips_per_s > 0 and report.mel_compute_clips_per_s > 0
    assert report.device in ("cpu",) or report.device.startswith("cuda")
    lines = report.lines()
    assert all(isinstance(line, str) for line in lines)
    assert any("steady state" in line for line in lines) and report.timed_clips > 0
    assert report.shard_set and any(report.shard_set in line and "shardkit info" in line for line in lines)
    again = run_demo(tmp_path, workers=0, epochs=1, batch_size=4)   # re-packs over its own shard set
    assert again.shards == report.shards and again.shard_bytes == report.shard_bytes


def test_demo_refuses_a_shard_set_it_did_not_make(tmp_path: Path) -> None:
    import pytest

    from shardkit.demo import run_demo
    from shardkit.errors import UsageError

    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "manifest.json").write_text("{}")
    with pytest.raises(UsageError, match="did not make"):
        run_demo(tmp_path)
    assert (tmp_path / "shards" / "manifest.json").read_text() == "{}"


def test_the_cli_demo_works_in_the_cache_folder_not_the_current_one(tmp_path: Path, monkeypatch) -> None:
    """issue 22 item 23: ``shardkit demo`` wrote ``shardkit-demo/`` into the current folder (the repository when
    run from a clone); without --out it works in shardkit's cache folder."""
    from shardkit.demo import default_workdir

    monkeypatch.setenv("SHARDKIT_CACHE_DIR", str(tmp_path / "cache"))
    assert default_workdir() == tmp_path / "cache" / "demo"
    monkeypatch.delenv("SHARDKIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert default_workdir() == tmp_path / "xdg" / "shardkit" / "demo"
    import subprocess
    import sys

    shown = subprocess.run([sys.executable, "-m", "shardkit_cli", "demo", "--help"], capture_output=True, text=True)
    assert "--out" in shown.stdout and "cache folder" in shown.stdout and "shardkit-demo" not in shown.stdout
