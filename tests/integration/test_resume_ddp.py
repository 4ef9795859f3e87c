"""Mid-epoch resume through real DataLoaders, and real DDP (torch.multiprocessing + gloo).

Simulated ranks use ``rank=``/``world_size=``; the DDP tests spawn real processes that find their
rank through ``torch.distributed``.
"""

import json
import os
from datetime import timedelta
from itertools import islice
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as tmp
from procs import free_port
from read_fixtures import make_set
from torch.utils.data import DataLoader

from shardkit.dataset import ShardDataset

#: 7 shards (does not divide by 2 or 3), 25 samples of 32 frames (one short: 9 frames)
LENGTHS = [[32] * 4, [32] * 3, [32] * 5, [32] * 2, [32] * 3 + [9], [32] * 3, [32] * 4]
N = sum(map(len, LENGTHS))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_set(tmp_path_factory.mktemp("resume") / "s", LENGTHS)


def _ds(path, world, rank, batch, partial="pad", **kw):
    return ShardDataset(path, batch_size=batch, seed=9, shuffle_window="5kB", partial=partial,
                        rank=rank, world_size=world, **kw)


def _rows(batches):
    """[(keys, audio bytes, valid)] per batch, detached from the loader's shared memory."""
    return [(list(b["keys"]), [a.tobytes() for a in b["audio"].numpy()], b["valid"].tolist()) for b in batches]


def _loader(ds, workers, **kw):
    return DataLoader(ds, batch_size=None, num_workers=workers, **kw)


def _run(path, world, workers, batch, partial, *, epoch=0, state=None):
    """Each rank's batches of one iteration (after ``load_state_dict(state)`` if given)."""
    out = []
    for r in range(world):
        ds = _ds(path, world, r, batch, partial)
        ds.set_epoch(epoch)
        if state is not None:
            ds.load_state_dict(state)
        expected = len(ds)  # the remainder's batches, while the restore is pending
        out.append(_rows(_loader(ds, workers)))
        assert len(out[-1]) == expected
    return out


def _global(per_rank):
    """The valid (key, audio) entries step by step, rank by rank: the order the ranks consumed G."""
    steps = max(map(len, per_rank), default=0)
    return [(k, a) for t in range(steps) for rows in per_rank if t < len(rows)
            for k, a, v in zip(*rows[t]) if v]


CONFIGS = {  # (world, workers, batch) before -> after the interruption
    "same-w2-k0": ((2, 0, 3), (2, 0, 3)),
    "same-w2-k2": ((2, 2, 3), (2, 2, 3)),
    "w2k2-to-w3k0": ((2, 2, 3), (3, 0, 2)),
    "w3k0-to-w1k2": ((3, 0, 2), (1, 2, 4)),
}
_REF: dict = {}


@pytest.mark.parametrize("point", ["start", "middle", "last", "boundary"])
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("partial", ["pad", "keep"])
def test_resumed_stream_equals_the_uninterrupted_one(shards, config, point, partial):
    path, by_key = shards
    (w0, k0, b0), (w1, k1, b1) = CONFIGS[config]
    key = (w0, k0, b0, partial)
    if key not in _REF:
        _REF[key] = _run(path, w0, k0, b0, partial)
    ref = _REF[key]
    steps = len(ref[0])
    done = {"start": 0, "middle": steps // 2, "last": steps - 1, "boundary": steps}[point]
    # the interrupted run: rank 0 really takes `done` batches from its loader, then saves
    ds = _ds(path, w0, 0, b0, partial)
    taken = _rows(islice(iter(_loader(ds, k0)), done))
    assert taken == ref[0][:done]
    state = ds.state_dict(done)
    assert all(_ds(path, w0, r, b0, partial).state_dict(done) == state for r in range(w0))
    assert state["consumed"] == min(done * w0 * b0, N)
    resumed = _run(path, w1, k1, b1, partial, state=state)
    prefix = [rows[:done] for rows in ref]
    assert _global(prefix) + _global(resumed) == _global(ref)  # keys and audio, in order
    assert sorted(k for k, _ in _global(ref)) == sorted(by_key)
    if (w0, k0, b0) == (w1, k1, b1):  # same topology: every rank's stream, padding included
        for r in range(w0):
            assert prefix[r] + resumed[r] == ref[r]
    if partial == "pad":
        assert len({len(rows) for rows in resumed}) == 1  # equal step counts after the restore too


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_restore_reaches_persistent_workers(shards, context):
    path, _ = shards
    reference = {e: _run(path, 1, 0, 4, "pad", epoch=e)[0] for e in (0, 1, 2)}
    ds = _ds(path, 1, 0, 4)
    loader = _loader(ds, 2, persistent_workers=True, multiprocessing_context=context)
    assert _rows(loader) == reference[0]  # workers are alive from here on
    ds.load_state_dict({**ds.state_dict(0), "epoch": 1, "consumed": 8})
    assert _rows(loader) == reference[1][2:]  # the restore reached the live workers
    assert _rows(loader) == reference[1]  # one iteration only: then the whole epoch again
    ds.load_state_dict({**ds.state_dict(0), "epoch": 1, "consumed": N})  # saved at the epoch's end
    assert _rows(loader) == []
    ds.set_epoch(2)
    assert _rows(loader) == reference[2]


# -- real DDP -------------------------------------------------------------------------------------------


def _ddp_rank(rank, world, port, path, outdir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        result = {}
        # training: the rank comes from torch.distributed; an all_reduce per step hangs unless every
        # rank takes the same number of steps
        ds = ShardDataset(path, batch_size=3, seed=1, shuffle_window="5kB")
        assert (ds.rank, ds.world_size) == (rank, world)
        loader = DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True)
        for epoch in (0, 1):
            ds.set_epoch(epoch)
            steps, valid = 0, torch.zeros(1)
            for batch in loader:
                v = batch["valid"].sum().reshape(1).float()
                dist.all_reduce(v)
                valid += v
                steps += 1
            result[f"train{epoch}"] = [steps, len(ds), int(valid.item())]
        # a mid-epoch checkpoint of epoch 1 restored into the live workers: same steps for every rank
        ds.load_state_dict({**ds.state_dict(1), "epoch": 1})
        steps = 0
        for batch in loader:
            dist.all_reduce(batch["valid"].sum().reshape(1).float())
            steps += 1
        result["resumed"] = steps
        # validation: every sample once across ranks
        val = ShardDataset(path, batch_size=3, shuffle=False)
        keys = [k for b in DataLoader(val, batch_size=None, num_workers=2) for k in b["keys"]]
        gathered = [None] * world
        dist.all_gather_object(gathered, keys)
        result["val_keys"] = keys
        result["val_all"] = [k for ks in gathered for k in ks]
        Path(outdir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("world", [2, 3])
def test_real_ddp_equal_steps_and_exact_validation(shards, tmp_path, world):
    path, by_key = shards
    tmp.spawn(_ddp_rank, args=(world, free_port(), str(path), str(tmp_path)), nprocs=world, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]
    steps = -(-N // (3 * world))
    for epoch in (0, 1):
        assert {tuple(r[f"train{epoch}"][:2]) for r in results} == {(steps, steps)}
        assert {r[f"train{epoch}"][2] for r in results} == {N}  # the all_reduced valid count
    assert {r["resumed"] for r in results} == {steps - 1}
    all_keys = [k for r in results for k in r["val_keys"]]
    assert sorted(all_keys) == sorted(by_key) and len(set(all_keys)) == N
    assert all(r["val_all"] == results[0]["val_all"] for r in results)
