"""``shardkit kaggle prepare``: Kaggle's rules refused locally with the rule named; the upload folder is
itself a valid shard set (shards as ``.shard`` hard links, indexes naming them, the same version id),
read by shardkit, ``tar`` and webdataset; ``--dry-run`` writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest

import shardkit
from shardkit.errors import UsageError
from shardkit.kaggle import MAX_FILES, prepare, published_name


def _prepare(packed, tmp_path, **kw):
    args = {"dataset_id": "tester/bird-shards", "title": "Bird shards v1", "license": "CC-BY-4.0"}
    args.update(kw)
    return prepare(packed, out=tmp_path / "up", **args)


def test_layout_is_a_valid_shard_set_with_the_same_version(packed, tmp_path):
    plan = _prepare(packed, tmp_path, subtitle="Shards of a small BirdCLEF-like corpus", keywords=["audio"])
    up = plan.folder
    names = sorted(os.listdir(up))
    assert "dataset-metadata.json" in names and not any(n.endswith(".tar") for n in names)
    assert len(plan.files) == len(names) - 1 <= MAX_FILES
    original, published = shardkit.format.Manifest.load(packed), shardkit.format.Manifest.load(up)
    assert published.version_id == original.version_id
    assert [e.name for e in published.shards] == [published_name(e.name) for e in original.shards]
    for a, b in zip(original.shards, published.shards):
        assert b.name.endswith(".shard") and b.sha256 == a.sha256
        assert os.stat(packed / a.name).st_ino == os.stat(up / b.name).st_ino  # a hard link: no extra disk
    assert shardkit.verify(up).ok
    with shardkit.ShardSet.open(packed) as x, shardkit.ShardSet.open(up) as y:
        assert x.keys == y.keys
        assert all(np.array_equal(x.read_frames(i), y.read_frames(i)) for i in range(len(x)))
    meta = json.loads((up / "dataset-metadata.json").read_text())
    assert meta["id"] == "tester/bird-shards" and meta["licenses"] == [{"name": "CC-BY-4.0"}]
    assert meta["keywords"] == ["audio"] and original.version_id in meta["description"]
    assert {r["path"] for r in meta["resources"]} == set(names) - {"dataset-metadata.json"}
    first = published.shards[0]
    with tarfile.open(up / first.name) as tar:  # tar reads a shard by any name
        assert len(tar.getnames()) == 2 * first.samples
    again = _prepare(packed, tmp_path)  # a re-run keeps the links
    assert again.linked == len(original.shards) and sorted(os.listdir(up)) == names


def test_webdataset_reads_published_shards(packed, tmp_path):
    wds = pytest.importorskip("webdataset")
    up = _prepare(packed, tmp_path).folder
    urls = [str(up / e.name) for e in shardkit.format.Manifest.load(up).shards]
    keys = [s["__key__"] for s in wds.WebDataset(urls, shardshuffle=False)]
    assert sorted(keys) == sorted(shardkit.ShardSet.open(packed).keys)


@pytest.mark.parametrize(("kw", "rule"), [
    ({"dataset_id": "tester/abc"}, "6-50 characters"),
    ({"dataset_id": "tester/bird_shards"}, "letters, digits"),
    ({"dataset_id": "bird-shards"}, "OWNER/SLUG"),
    ({"title": "Birds"}, "title"),
    ({"title": "x" * 51}, "title"),
    ({"subtitle": "too short"}, "20-80"),
    ({"license": "WTFPL"}, "CC0-1.0"),
])
def test_bad_metadata_is_refused_naming_the_rule(packed, tmp_path, kw, rule):
    with pytest.raises(UsageError, match=rule):
        _prepare(packed, tmp_path, **kw)
    assert not (tmp_path / "up").exists()


def test_license_case_and_dry_run(packed, tmp_path):
    plan = _prepare(packed, tmp_path, license="cc0-1.0", dry_run=True)
    assert plan.metadata["licenses"] == [{"name": "CC0-1.0"}] and not plan.written
    assert not (tmp_path / "up").exists()
    assert plan.total_bytes >= sum(e.bytes for e in shardkit.format.Manifest.load(packed).shards)


def _write_set(out, shard_size):
    with shardkit.ShardSetWriter(out, sample_rate=16000, codec="wav16", shard_size=shard_size,
                                 vocabulary=["a", "b"]) as w:
        for n in range(60):
            clip = (np.sin(np.arange(16000) * (n + 1) / 50) * 8000).astype(np.int16)
            w.write(clip, key=f"clip-{n:04d}", primary_label="ab"[n % 2])
    return out


def test_too_many_shards_says_which_shard_size_fits(tmp_path):
    many = _write_set(tmp_path / "many", "64KB")
    assert 2 * len(shardkit.format.Manifest.load(many).shards) + 1 > MAX_FILES
    with pytest.raises(UsageError, match=r"at most 50 per dataset; re-pack with --shard-size \d+MB") as exc:
        _prepare(many, tmp_path)
    size = str(exc.value).split("--shard-size ")[1].split()[0]
    fits = _write_set(tmp_path / "fits", size)
    assert _prepare(fits, tmp_path).written


def test_out_with_other_files_is_refused(packed, tmp_path):
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match=r"notes\.txt"):
        _prepare(packed, tmp_path)


def test_cli_dry_run_prints_files_and_bytes(packed, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "shardkit_cli", "kaggle", "prepare", str(packed), "--id",
                           "tester/bird-shards", "--title", "Bird shards v1", "--out", str(tmp_path / "up"),
                           "--dry-run"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "would upload" in proc.stdout and "shard-00000.shard" in proc.stdout and "manifest.json" in proc.stdout
    assert not (tmp_path / "up").exists()
    bad = subprocess.run([sys.executable, "-m", "shardkit_cli", "kaggle", "prepare", str(packed), "--id",
                          "tester/abc", "--title", "Bird shards v1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "6-50 characters" in bad.stderr and "Traceback" not in bad.stderr
