"""A derived set on Kaggle as a *delta dataset* (issue 13), through the real ``kaggle`` 2.2.5 client and the fake
service (tests/kaggle_fake.py): a parent set is published, ``shardkit update`` makes the next version, and
``prepare --delta`` + ``publish --delta`` upload only its new shards, indexes, manifest and sources table, with
the diff against the parent as default version notes. Both datasets, as the server stored them, mounted
read-only like a notebook's ``/kaggle/input/datasets/OWNER/SLUG/``, read through ``kaggle://OWNER/DELTA`` in a
DataLoader with 2 workers give the local derived set's batches; without the parent attached, a one-line error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from kaggle_fake import FakeKaggle, mount, unmount
from procs import cli
from torch.utils.data import DataLoader
from versions_factory import first_pack_and_season

import shardkit
from shardkit.errors import ShardReadError
from shardkit.kaggle import locate

pytest.importorskip("kaggle")
PARENT, DELTA = "tester/birds-2025", "tester/birds-2026-delta"


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """v1 packed (shards of several sources, so the update leaves tombstones), v2 = its update."""
    root = tmp_path_factory.mktemp("kdelta")
    csv_path, _ = first_pack_and_season(root, shard_size="160KB")
    cli("update", root / "audio", root / "v1", root / "v2", "--metadata", csv_path, "--note", "season 2")
    return root


def _batches(source) -> list:
    ds = shardkit.ShardDataset(source, crop_seconds=0.5, batch_size=4, seed=3)
    return list(DataLoader(ds, batch_size=None, num_workers=2))


def test_delta_dataset_uploads_only_new_shards_and_reads_beside_its_parent(chain, tmp_path):
    v1, v2 = chain / "v1", chain / "v2"
    with FakeKaggle(tmp_path / "server") as fake:
        env = fake.env(tmp_path / "home")
        cli("kaggle", "prepare", v1, "--id", PARENT, "--title", "Birds 2025 shards", env=env)
        cli("kaggle", "publish", v1, env=env)
        refused = cli("kaggle", "publish", v1, "--delta", env=env, ok=False)
        assert refused.returncode != 0 and "not prepared as a delta" in refused.stderr
        p = cli("kaggle", "prepare", v2, "--delta", "--id", DELTA, "--title", "Birds 2026 delta", env=env)
        assert f"attach {PARENT} too" in p.stdout
        up = v2.parent / "v2-kaggle"
        local = shardkit.format.Manifest.load(v2)
        own = [e for e in local.shards if e.origin is None]
        assert own and len(own) < len(local.shards)
        expected = {f"{e.name[:-4]}.shard": e.bytes for e in own}
        expected.update({e.index: (up / e.index).stat().st_size for e in own})
        expected.update({n: (up / n).stat().st_size for n in ("manifest.json", "sources.json")})
        first = len(fake.uploads)
        cli("kaggle", "publish", v2, "--delta", env=env)
        sent = {u.name: len(u.data) for u in list(fake.uploads.values())[first:]}
        assert sent == expected  # only the new shards, their indexes, the manifest and the sources table
        assert sum(sent.values()) < sum(e.bytes for e in local.shards) / 2
        cli("kaggle", "publish", up, "--delta", env=env)  # a new version: the notes default to the diff
        notes = fake.datasets[DELTA].versions[-1]["notes"]
        assert "added 3 sources" in notes and "relabelled 1 sources" in notes and local.parent in notes
        _read_in_notebook(fake, v2, tmp_path / "kaggle" / "input")


def _read_in_notebook(fake: FakeKaggle, v2: Path, inputs: Path) -> None:
    folders = [mount(fake.files(PARENT), inputs, PARENT), mount(fake.files(DELTA), inputs, DELTA)]
    lone = inputs.parent.parent / "lone" / "input"
    folders.append(mount(fake.files(DELTA), lone, DELTA))
    published = shardkit.format.Manifest.load(folders[1])
    assert published.version_id == shardkit.format.Manifest.load(v2).version_id
    assert all(e.name.endswith(".shard") for e in published.shards)
    assert all(k.endswith(".shard") for k in published.overrides.get("removed", {})) and published.overrides["removed"]
    try:
        os.environ["KAGGLE_CACHE_MOUNT_FOLDER"] = str(inputs)
        assert locate(DELTA).search_path == [folders[1], folders[0]]
        expected, got = _batches(v2), _batches("kaggle://" + DELTA)
        assert len(got) == len(expected) > 1
        for a, b in zip(expected, got):
            assert a["keys"] == b["keys"] and torch.equal(a["labels"], b["labels"])
            assert torch.equal(a["audio"], b["audio"])
        assert shardkit.verify("kaggle://" + DELTA).ok
        assert sorted(os.listdir(folders[1])) == sorted(os.listdir(fake.files(DELTA)))  # nothing written there
        os.environ["KAGGLE_CACHE_MOUNT_FOLDER"] = str(lone)
        with pytest.raises(ShardReadError) as err:
            shardkit.ShardDataset("kaggle://" + DELTA, crop_seconds=0.5, batch_size=4)
        message = str(err.value)
        assert "\n" not in message and published.parent in message and "attach the Kaggle dataset" in message
    finally:
        os.environ.pop("KAGGLE_CACHE_MOUNT_FOLDER", None)
        unmount(folders)
