"""``shardkit kaggle wheelhouse`` (shardkit's own wheel offline; with its dependencies from PyPI, marked slow)
and ``shardkit.kaggle.locate`` under both notebook input layouts, read-only, never writing there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest

import shardkit
from shardkit.errors import ManifestError
from shardkit.kaggle import EXCLUDED, locate
from shardkit.kaggle.wheels import DEPENDENCIES


def _wheelhouse(tmp_path, *args):
    out = tmp_path / "wheels"
    proc = subprocess.run([sys.executable, "-m", "shardkit_cli", "kaggle", "wheelhouse", str(out), "--id",
                           "tester/shardkit-wheels", *args], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pip install --no-index --find-links /kaggle/input/shardkit-wheels shardkit" in proc.stdout
    meta = json.loads((out / "dataset-metadata.json").read_text())
    assert meta["id"] == "tester/shardkit-wheels" and 6 <= len(meta["title"]) <= 50
    return out, sorted(p.name for p in out.glob("*.whl"))


def test_wheelhouse_own_wheel_offline(tmp_path):
    out, wheels = _wheelhouse(tmp_path, "--no-deps")
    assert wheels == [f"shardkit-{shardkit.__version__}-py3-none-any.whl"]
    names = zipfile.ZipFile(out / wheels[0]).namelist()
    assert "shardkit/kaggle/__init__.py" in names and "shardkit_cli/kaggle.py" in names
    assert not any(n.startswith("tests/") for n in names)


@pytest.mark.slow
def test_wheelhouse_with_dependencies_never_torch(tmp_path):
    _, wheels = _wheelhouse(tmp_path, "--python", "3.11")
    project = {w.split("-")[0].lower().replace("_", "-") for w in wheels}
    assert project == {"shardkit", *DEPENDENCIES}
    assert not any(p.startswith(tuple(e.rstrip("*") for e in EXCLUDED)) for p in project - {"shardkit"})
    assert all("cp311" in w or "py3" in w or "abi3" in w for w in wheels)


def test_locate_both_layouts_and_search_path(packed, tmp_path):
    root = tmp_path / "input"
    old = root / "bird-shards"
    new = root / "datasets" / "tester" / "other-shards"
    for folder in (old, new):
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(packed, folder)
    a = locate("tester/bird-shards", input_root=root)
    assert a.path == old and a.layout == "bird-shards" and a.search_path == [old, new]
    b = locate("kaggle://tester/other-shards", input_root=root)
    assert b.path == new and b.layout == "datasets/tester/other-shards" and b.search_path == [new, old]
    with pytest.raises(ManifestError, match="attach the dataset"):
        locate("tester/missing-set", input_root=root)


def test_locate_refuses_an_unpacked_shard(packed, tmp_path):
    folder = tmp_path / "input" / "bird-shards"
    folder.mkdir(parents=True)
    manifest = shardkit.format.Manifest.load(packed)
    (folder / "manifest.json").write_bytes((packed / "manifest.json").read_bytes())
    (folder / manifest.shards[0].name).mkdir()  # what Kaggle makes of a .tar it unpacks
    with pytest.raises(ManifestError, match="arrived as a folder"):
        locate("tester/bird-shards", input_root=tmp_path / "input")
