"""``shardkit.Mixture`` of two packed ogg sets with different vocabularies: exact per-epoch counts,
labels joined by name, resume, DataLoader workers and real DDP (gloo)."""

import json
import os
from datetime import timedelta
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist
import torch.multiprocessing as tmp
from procs import free_port
from recipe_fixtures import pack_corpus
from test_recipes import _rows
from torch.utils.data import DataLoader

import shardkit
from shardkit import Mixture, ShardDataset


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    a = pack_corpus(root / "a", [("aaa", 3.0), ("bbb", 2.0)] * 6, prefix="XA")   # 30 segments
    b = pack_corpus(root / "b", [("bbb", 2.0), ("ccc", 4.0)] * 3, prefix="XB")   # 18 segments
    return a, b


def _mix(paths, rank=None, world=None, **kw):
    a, b = paths
    parts = [ShardDataset(a, batch_size=4, seed=1, shuffle_window="40kB", crop_seconds=0.5),
             ShardDataset(b, batch_size=4, seed=2, shuffle_window="40kB", crop_seconds=0.5, weights="balanced")]
    return Mixture(parts, proportions=[0.75, 0.25], samples_per_epoch=kw.pop("m", 41), seed=7, rank=rank,
                   world_size=world, **kw)


def _parts(batches):
    return [(p, k) for b in batches for p, k, v in zip(b["part"].tolist(), b["keys"], b["valid"].tolist()) if v]


def test_counts_vocabulary_and_labels(two_sets):
    mix = _mix(two_sets)
    assert mix.classes == ["aaa", "bbb", "ccc"] and mix.counts == [31, 10]
    for epoch in (0, 1):
        mix.set_epoch(epoch)
        batches = list(DataLoader(mix, batch_size=None, num_workers=2))
        assert len(batches) == len(mix) == 11
        got = _parts(batches)
        assert len(got) == 41
        assert sum(p == 0 for p, _ in got) == 31 and sum(p == 1 for p, _ in got) == 10
        for b in batches:  # labels land in the joined vocabulary by name
            for p, k, row, v in zip(b["part"].tolist(), b["keys"], b["labels"].numpy(), b["valid"].tolist()):
                if v:
                    assert mix.classes[int(row.argmax())] == k.split("/")[0] and row.sum() == 1.0
                    assert k.split("/")[1][:2] == ("XA", "XB")[p]
        assert b["audio"].shape == (b["audio"].shape[0], 4000)
    fixed = _mix(two_sets, classes=["ccc", "bbb"])
    b = next(iter(fixed))
    for k, row in zip(b["keys"], b["labels"].numpy()):
        assert row.sum() == (0.0 if k.startswith("aaa/") else 1.0)


def test_resume_equals_the_uninterrupted_epoch(two_sets):
    ref = [_rows(DataLoader(_mix(two_sets, r, 2), batch_size=None, num_workers=2)) for r in range(2)]
    mix = _mix(two_sets, 0, 2)
    done = 3
    assert _rows(islice(iter(DataLoader(mix, batch_size=None, num_workers=2)), done)) == ref[0][:done]
    state = mix.state_dict(done)
    for r in range(2):
        again = _mix(two_sets, r, 2)
        again.load_state_dict(state)
        assert ref[r][:done] + _rows(DataLoader(again, batch_size=None, num_workers=2)) == ref[r]
    with pytest.raises(shardkit.UsageError, match="another subset"):
        _mix(two_sets, 0, 2, m=40).load_state_dict(state)


def test_refusals(two_sets, tmp_path):
    a, b = two_sets
    with pytest.raises(shardkit.UsageError, match="Mixture"):
        ShardDataset([a, b])
    with pytest.raises(shardkit.UsageError, match="crop length"):
        Mixture([ShardDataset(a, crop_seconds=0.5), ShardDataset(b, crop_seconds=0.25)])
    other = pack_corpus(tmp_path / "c", [("ccc", 2.0)] * 3, sample_rate=16000, prefix="XC")
    with pytest.raises(shardkit.UsageError, match="sample rate"):
        Mixture([ShardDataset(a, crop_seconds=0.5), ShardDataset(other, crop_seconds=0.5)])
    with pytest.raises(shardkit.UsageError, match="proportions"):
        Mixture([ShardDataset(a), ShardDataset(b)], proportions=[1.0])
    with pytest.raises(shardkit.UsageError, match="shuffle=False"):
        Mixture([ShardDataset(a), ShardDataset(b, shuffle=False)])


def _ddp_rank(rank, world, port, paths, outdir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        mix = _mix(paths)
        assert (mix.rank, mix.world_size) == (rank, world)
        steps, got = 0, []
        for batch in DataLoader(mix, batch_size=None, num_workers=2):
            dist.all_reduce(batch["valid"].sum().reshape(1).float())
            got += [[p, k] for p, k, v in zip(batch["part"].tolist(), batch["keys"], batch["valid"].tolist()) if v]
            steps += 1
        Path(outdir, f"rank{rank}.json").write_text(json.dumps([steps, len(mix), got]))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_real_ddp_equal_counts(two_sets, tmp_path):
    paths = tuple(map(str, two_sets))
    tmp.spawn(_ddp_rank, args=(2, free_port(), paths, str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert {(s, n) for s, n, _ in results} == {(6, 6)}  # ceil(41 / 8)
    got = sorted(tuple(x) for _, _, g in results for x in g)
    ref = sorted(_parts(DataLoader(_mix(two_sets), batch_size=None)))
    assert got == ref
    assert np.bincount([p for p, _ in got]).tolist() == [31, 10]


@pytest.mark.parametrize("workers", [0, 2])
def test_read_ahead_changes_no_batch(two_sets, workers):
    a, b = two_sets

    def mix(ahead):
        parts = [ShardDataset(p, batch_size=4, seed=s, shuffle_window="40kB", crop_seconds=0.5, read_ahead=ahead,
                              weights=w) for p, s, w in ((a, 1, None), (b, 2, "balanced"))]
        return Mixture(parts, proportions=[0.6, 0.4], samples_per_epoch=30, seed=3)

    with_hints = _rows(DataLoader(mix(True), batch_size=None, num_workers=workers))
    assert with_hints == _rows(DataLoader(mix(False), batch_size=None, num_workers=workers))
