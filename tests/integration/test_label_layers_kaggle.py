"""A layer-only version on Kaggle (issue 21): ``kaggle prepare --delta`` + ``publish --delta`` of a version made by
``shardkit labels add`` upload no shard — only its manifest, sources table and layer file — through the real
kaggle client and the fake service (tests/kaggle_fake.py); mounted beside its parent like notebook inputs, it
reads with ``targets=`` through DataLoader workers."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from kaggle_fake import FakeKaggle, mount, unmount
from procs import cli
from torch.utils.data import DataLoader
from versions_factory import OPTIONS, corpus

import shardkit

pytest.importorskip("kaggle")
PARENT, DELTA = "tester/birds-audio", "tester/birds-pl"


def _batches(source) -> list:
    ds = shardkit.ShardDataset(source, crop_seconds=0.5, batch_size=4, seed=3, targets="pl")
    return list(DataLoader(ds, batch_size=None, num_workers=2))


def test_a_layer_only_delta_uploads_no_shard_and_reads_beside_its_parent(tmp_path):
    csv_path = corpus(tmp_path)
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    shardkit.pack(tmp_path / "audio", v1, metadata=csv_path, options=shardkit.PackOptions(**OPTIONS))
    keys = [e.key for e in shardkit.list_samples(v1)]
    shardkit.add_labels(v1, v2, name="pl", keys=keys, probs=np.linspace(0, 1, 2 * len(keys)).reshape(-1, 2),
                        classes=["amecro", "barswa"])
    with FakeKaggle(tmp_path / "server") as fake:
        env = fake.env(tmp_path / "home")
        cli("kaggle", "prepare", v1, "--id", PARENT, "--title", "Birds audio shards", env=env)
        cli("kaggle", "publish", v1, env=env)
        cli("kaggle", "prepare", v2, "--delta", "--id", DELTA, "--title", "Birds pseudo labels", env=env)
        first = len(fake.uploads)
        cli("kaggle", "publish", v2, "--delta", env=env)
        sent = {u.name for u in list(fake.uploads.values())[first:]}
        assert sent == {"manifest.json", "sources.json", "labels-pl.layer"}
        planned = json.loads((tmp_path / "v2-kaggle" / "dataset-metadata.json").read_text())["shardkit"]
        assert "label layers added: pl" in planned["notes"]  # a new version's default notes
        inputs = tmp_path / "kaggle" / "input"
        folders = [mount(fake.files(PARENT), inputs, PARENT), mount(fake.files(DELTA), inputs, DELTA)]
        try:
            os.environ["KAGGLE_CACHE_MOUNT_FOLDER"] = str(inputs)
            expected, got = _batches(v2), _batches("kaggle://" + DELTA)
            assert len(got) == len(expected) > 1
            for a, b in zip(expected, got):
                assert a["keys"] == b["keys"] and torch.equal(a["targets"], b["targets"])
                assert torch.equal(a["audio"], b["audio"]) and torch.equal(a["targets_mask"], b["targets_mask"])
                assert b["targets_mask"][b["valid"]].all()  # every sample has a row; padding rows are masked
            assert shardkit.verify("kaggle://" + DELTA).ok
        finally:
            os.environ.pop("KAGGLE_CACHE_MOUNT_FOLDER", None)
            unmount(folders)
