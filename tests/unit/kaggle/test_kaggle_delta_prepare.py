"""``shardkit kaggle prepare`` of a set made by ``shardkit update``: a full snapshot by default (the parent's
shards included, the folder reads alone), or with ``delta`` only the new shards, whose manifest names the
parent's shards as the parent's Kaggle layout holds them (``.shard``, rewritten indexes) with the same version
id; the hash cache of :mod:`shardkit.read.lineage` with a read-only home."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from versions_factory import samples, update_chain

import shardkit
from shardkit.errors import ShardReadError, UsageError
from shardkit.kaggle import prepare
from shardkit.read import lineage as resolve


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    update_chain(root, shard_size="160KB")
    return root


def _prep(path, ref, out, **kw):
    return prepare(path, ref, "Birds shards test", "CC0-1.0", out=out, **kw)


def test_delta_names_the_parents_published_shards(chain, tmp_path):
    parent = _prep(chain / "v1", "tester/birds-v1", tmp_path / "p")
    plan = _prep(chain / "v2", "tester/birds-v2-delta", tmp_path / "d", delta=True, parent_ids=["tester/birds-v1"])
    local, published = shardkit.format.Manifest.load(chain / "v2"), shardkit.format.Manifest.load(plan.folder)
    own = {e.name for e in local.shards if e.origin is None}
    assert {f.name for f in plan.files} == {n[:-4] + ".shard" for n in own} | {
        n[:-4] + ".index" for n in own} | {"manifest.json", "sources.json"}
    assert sorted(os.listdir(plan.folder)) == sorted([f.name for f in plan.files] + ["dataset-metadata.json"])
    assert published.version_id == published.content_id() == local.version_id
    assert published.overrides["removed"] and all(k.endswith(".shard") for k in published.overrides["removed"])
    held = {e.name: e for e in shardkit.format.Manifest.load(parent.folder).shards}
    for e in published.shards:
        assert e.name.endswith(".shard")
        if e.origin is not None:  # as the parent's dataset holds it: name, index bytes and sha256
            assert (e.name, e.index_bytes, e.index_sha256) == (held[e.name].name, held[e.name].index_bytes,
                                                               held[e.name].index_sha256)
    meta = json.loads((plan.folder / "dataset-metadata.json").read_text())
    assert meta["shardkit"]["delta"] and meta["shardkit"]["parents"] == ["tester/birds-v1"]
    assert "added 3 sources" in meta["shardkit"]["notes"] and "tester/birds-v1" in meta["description"]
    assert plan.total_bytes < parent.total_bytes / 2
    assert shardkit.verify(plan.folder, search_path=[parent.folder]).ok
    assert samples(plan.folder, search_path=[parent.folder]) == samples(chain / "v2")
    solo = tmp_path / "solo" / "d"
    shutil.copytree(plan.folder, solo)
    with pytest.raises(ShardReadError, match=local.parent):
        shardkit.ShardSet.open(solo)  # the parent's dataset not reachable: named


def test_full_snapshot_includes_the_parents_shards(chain, tmp_path):
    plan = _prep(chain / "v2", "tester/birds-v2", tmp_path / "full")
    local = shardkit.format.Manifest.load(chain / "v2")
    assert len([f for f in plan.files if f.name.endswith(".shard")]) == len(local.shards)
    assert any("full snapshot" in n for n in plan.notes)
    alone = tmp_path / "alone" / "v2"  # nothing next to it: it reads by itself
    alone.parent.mkdir()
    os.rename(plan.folder, alone)
    assert shardkit.verify(alone).ok
    assert samples(alone) == samples(chain / "v2")
    assert shardkit.format.Manifest.load(alone).version_id == local.version_id


def test_refusals(chain, tmp_path):
    with pytest.raises(UsageError, match="no parent version"):
        _prep(chain / "v1", "tester/birds-v1", tmp_path / "x", delta=True)
    lonely = tmp_path / "lonely" / "v2"
    lonely.parent.mkdir()
    os.symlink(chain / "v2", lonely)
    with pytest.raises(ShardReadError, match="search_path"):  # the parent's shards cannot be found
        _prep(lonely, "tester/birds-v2", tmp_path / "y")
    assert not (tmp_path / "y").exists()


def test_dry_run_cli_prints_only_the_delta(chain, tmp_path):
    p = subprocess.run([sys.executable, "-m", "shardkit_cli", "kaggle", "prepare", str(chain / "v2"), "--delta",
                        "--dry-run", "--id", "tester/birds-v2-delta", "--title", "Birds v2 delta",
                        "--parent-id", "tester/birds-v1"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "would upload" in p.stdout and "attach tester/birds-v1 too" in p.stdout
    assert "shard-00000.shard" not in p.stdout


def test_hash_cache_with_a_home_that_cannot_be_written(chain, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    for var in (resolve.CACHE_ENV, "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    assert resolve.cache_dir() == home / ".cache" / "shardkit"  # a writable home: there
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")  # a home below a file can never be written, whoever runs the test
    monkeypatch.setenv("HOME", str(blocked / "home"))
    assert resolve.cache_dir().parent == tmp_path / "tmp"
    assert samples(chain / "v2") and (resolve.cache_dir() / "verified-shards.json").is_file()
    monkeypatch.setenv("TMPDIR", str(blocked / "tmp"))  # nowhere to write at all: still reads, saves nothing
    monkeypatch.setattr(tempfile, "tempdir", str(blocked / "tmp"))
    assert samples(chain / "v2")
