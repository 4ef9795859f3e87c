"""Training recipes on real encoded audio (ogg packed by ``shardkit.pack``): keys=/where= subsets and
weighted epochs through real DataLoader workers, resume, and real DDP (gloo)."""

import json
import os
from collections import Counter
from datetime import timedelta
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist
import torch.multiprocessing as tmp
from procs import free_port
from recipe_fixtures import pack_corpus
from torch.utils.data import DataLoader

import shardkit
from shardkit import ShardDataset

#: classes 1:50 in size: rare 2 segments, mid 20, common 100 (1 s segments of 8 kHz ogg)
FILES = [("rare", 2.0)] + [("mid", 4.0)] * 5 + [("common", 5.0)] * 20


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    return pack_corpus(tmp_path_factory.mktemp("recipes"), FILES)


def _rows(batches):
    """[(keys, audio bytes, valid)] per batch, detached from the loader's shared memory."""
    return [(list(b["keys"]), [a.tobytes() for a in b["audio"].numpy()], b["valid"].tolist()) for b in batches]


def _valid(rows):
    return [(k, a) for keys, audio, valid in rows for k, a, v in zip(keys, audio, valid) if v]


def _ranks(path, world, workers, epoch=0, state=None, **kw):
    out = []
    for r in range(world):
        ds = ShardDataset(path, rank=r, world_size=world, **kw)
        ds.set_epoch(epoch)
        if state is not None:
            ds.load_state_dict(state)
        expected = len(ds)
        out.append(_rows(DataLoader(ds, batch_size=None, num_workers=workers)))
        assert len(out[-1]) == expected
    return out


def _rated(c):
    return c["rating"] >= 3


def test_where_subset_reads_each_selected_sample_once_on_2_ranks_x_2_workers(packed):
    cols = shardkit.sample_columns(packed)
    want = set(cols["key"][cols["rating"] >= 3].tolist())
    kw = dict(batch_size=4, seed=5, shuffle_window="40kB", where=_rated)
    ranks = _ranks(packed, 2, 2, **kw)
    assert len(ranks[0]) == len(ranks[1])  # equal counts: no DDP hang
    got = [k for rows in ranks for k, _ in _valid(rows)]
    assert sorted(got) == sorted(want)  # exactly the selection, once each, ranks disjoint
    keys = sorted(want)[::2]
    by_keys = [k for rows in _ranks(packed, 2, 0, batch_size=4, keys=keys) for k, _ in _valid(rows)]
    assert sorted(by_keys) == keys


@pytest.mark.parametrize("recipe", [dict(where=_rated), dict(weights="balanced", samples_per_epoch=90)])
def test_resume_mid_epoch_equals_the_uninterrupted_epoch(packed, recipe):
    kw = dict(batch_size=3, seed=2, shuffle_window="40kB", crop_seconds=0.5, **recipe)
    ref = _ranks(packed, 2, 2, epoch=1, **kw)
    ds = ShardDataset(packed, rank=0, world_size=2, **kw)
    ds.set_epoch(1)
    done = len(ref[0]) // 2
    taken = _rows(islice(iter(DataLoader(ds, batch_size=None, num_workers=2)), done))
    assert taken == ref[0][:done]
    state = ds.state_dict(done)
    resumed = _ranks(packed, 2, 2, epoch=1, state=state, **kw)
    for r in range(2):
        assert ref[r][:done] + resumed[r] == ref[r]
    with pytest.raises(shardkit.UsageError, match="another subset"):
        ShardDataset(packed, batch_size=3, seed=2, shuffle_window="40kB", crop_seconds=0.5).load_state_dict(state)


def test_balanced_weights_draw_classes_evenly(packed):
    ds = ShardDataset(packed, batch_size=8, seed=0, shuffle_window="40kB", weights="balanced")
    assert ds.num_items == 122
    label = {k: k.split("/")[0] for k in ds.shard_set.keys}
    total = Counter()
    for epoch in range(20):
        ds.set_epoch(epoch)
        keys = [k for b in DataLoader(ds, batch_size=None, num_workers=0)
                for k, v in zip(b["keys"], b["valid"].tolist()) if v]
        assert len(keys) == 122
        total.update(label[k] for k in keys)
    counts = np.asarray([total[c] for c in ("rare", "mid", "common")], dtype=float)
    assert np.all(np.abs(counts / counts.mean() - 1) < 0.10), counts
    again = ShardDataset(packed, batch_size=8, seed=0, shuffle_window="40kB", weights="balanced")
    again.set_epoch(19)
    assert np.array_equal(again.order(19), ds.order(19))  # the same (seed, epoch): the same draws


def test_repeated_draws_get_their_own_crops(packed):
    ds = ShardDataset(packed, batch_size=61, seed=1, crop_seconds=0.25, weights="balanced")
    batches = list(DataLoader(ds, batch_size=None))
    rare = {a.tobytes() for b in batches for k, a in zip(b["keys"], b["audio"].numpy()) if k.startswith("rare/")}
    assert len(rare) > 10  # ~40 copies of 2 rare samples, each at its own random offset


def test_weights_forms_and_errors(packed):
    cols = shardkit.sample_columns(packed)
    n = len(cols["key"])
    by_fn = ShardDataset(packed, weights=lambda c: (c["primary_label"] == "rare") * 1.0, samples_per_epoch=10)
    rare = {by_fn.shard_set.keys[i] for i in (by_fn.order(0) % n).tolist()}
    assert {k.split("/")[0] for k in rare} == {"rare"}
    arr = ShardDataset(packed, weights=np.ones(n), samples_per_epoch=n)
    assert sorted((arr.order(3) % n).tolist()) == list(range(n))  # uniform weights, m = N: each once
    assert ShardDataset(packed, weights=0.5).num_items == n
    with pytest.raises(shardkit.UsageError, match="'balanced'"):
        ShardDataset(packed, weights="even")
    with pytest.raises(shardkit.UsageError, match="shuffle=True"):
        ShardDataset(packed, weights="balanced", shuffle=False)
    with pytest.raises(shardkit.UsageError, match="samples_per_epoch"):
        ShardDataset(packed, samples_per_epoch=0)


# -- real DDP -------------------------------------------------------------------------------------------


def _ddp_rank(rank, world, port, path, outdir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        ds = ShardDataset(path, batch_size=4, seed=3, shuffle_window="40kB", where=_rated, weights="balanced",
                          samples_per_epoch=50)
        loader = DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True)
        result = {}
        for epoch in (0, 1):
            ds.set_epoch(epoch)
            steps, keys = 0, []
            for batch in loader:
                dist.all_reduce(batch["valid"].sum().reshape(1).float())  # hangs unless steps are equal
                keys += [k for k, v in zip(batch["keys"], batch["valid"].tolist()) if v]
                steps += 1
            result[f"epoch{epoch}"] = [steps, len(ds), keys]
        Path(outdir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_real_ddp_weighted_subset(packed, tmp_path):
    tmp.spawn(_ddp_rank, args=(2, free_port(), str(packed), str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    ref = ShardDataset(packed, batch_size=4, seed=3, shuffle_window="40kB", where=_rated, weights="balanced",
                       samples_per_epoch=50, rank=0, world_size=1)
    n = len(ref.shard_set)
    for epoch in (0, 1):
        assert {tuple(r[f"epoch{epoch}"][:2]) for r in results} == {(7, 7)}  # ceil(50 / 8)
        got = sorted(k for r in results for k in r[f"epoch{epoch}"][2])
        assert got == sorted(ref.shard_set.keys[i] for i in (ref.order(epoch) % n).tolist())


@pytest.mark.parametrize("workers", [0, 2])
def test_read_ahead_changes_no_batch_of_a_weighted_subset(packed, workers):
    kw = dict(batch_size=4, seed=3, shuffle_window="40kB", crop_seconds=0.5, where=_rated, weights="balanced")
    ranks = [_ranks(packed, 2, workers, read_ahead=ahead, **kw) for ahead in (True, False)]
    assert ranks[0] == ranks[1]
