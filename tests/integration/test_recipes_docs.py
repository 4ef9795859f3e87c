"""docs/recipes.md's examples run as written on the demo set (the demo corpus packed as ``shardkit demo``
packs it: real ogg/flac/mp3/wav files, recordings mode), and ``shardkit folds`` through the CLI."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import shardkit
from shardkit.demo.corpus import AUDIO_DIR, METADATA_NAME, make_demo_corpus
from shardkit.demo.run import _timed_pack

DOC = Path(__file__).resolve().parents[2] / "docs" / "recipes.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo") / "shardkit-demo"
    make_demo_corpus(work / "corpus")
    _timed_pack(work / "corpus" / METADATA_NAME, work / "shards", 2, None)
    assert (work / "corpus" / AUDIO_DIR).is_dir()
    return work.parent


def test_the_doc_has_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("n", range(len(BLOCKS)))
def test_doc_example_runs(demo, n, monkeypatch, capsys):
    monkeypatch.chdir(demo)
    exec(compile(BLOCKS[n], f"docs/recipes.md block {n}", "exec"), {"__name__": "__doc_example__"})
    out = capsys.readouterr().out
    print(out)
    assert out.strip()  # every example prints what it shows


def test_cli_folds_writes_a_csv_load_folds_reads(demo, tmp_path):
    out = tmp_path / "folds.csv"
    cmd = [sys.executable, "-m", "shardkit_cli.main", "folds", str(demo / "shardkit-demo" / "shards"), "-k", "3",
           "-o", str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "fold 2:" in done.stderr and out.read_text().startswith("key,fold\n")
    assert shardkit.load_folds(out) == shardkit.folds(demo / "shardkit-demo" / "shards", k=3)
    again = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert again.returncode != 0 and "--force" in again.stderr
