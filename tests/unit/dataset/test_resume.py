"""Mid-epoch resume (state_dict / load_state_dict), the split of G[start:] and describe_plan."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from read_fixtures import make_set

from shardkit.dataset import ShardDataset, plan
from shardkit.dataset import dataset as dataset_mod
from shardkit.dataset.order.shuffle import OrderSpec, epoch_order
from shardkit.errors import UsageError

# -- the split of G[start:] is a partition (hypothesis) ---------------------------------------------


@given(
    sizes=st.lists(st.integers(0, 9), min_size=1, max_size=6),
    seed=st.integers(-5, 5),
    world=st.integers(1, 4),
    workers=st.integers(1, 3),
    batch=st.integers(1, 5),
    partial=st.sampled_from(plan.PARTIAL_POLICIES),
    start_frac=st.floats(0, 1),
    window=st.integers(1, 4),
)
def test_split_of_the_remainder_is_a_partition(sizes, seed, world, workers, batch, partial, start_frac, window):
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n = int(ptr[-1])
    g = epoch_order(OrderSpec(ptr, np.ones(n, dtype=np.int64), seed=seed, epoch=1, shuffle=True, window_bytes=window))
    start = int(round(start_frac * n))
    plans = [plan.plan_rank(n, world_size=world, rank=r, batch_size=batch, partial=partial, start=start)
             for r in range(world)]
    per_rank = []
    for rp in plans:
        by_t = {}
        for w in range(workers):  # the workers' batches together are the rank's batches, each once
            for t in rp.worker_batches(w, workers):
                assert t not in by_t
                pos, valid = rp.positions(t)
                by_t[t] = g[pos[valid]].tolist()
        assert sorted(by_t) == list(range(len(rp)))
        per_rank.append([by_t[t] for t in range(len(rp))])
    counts = [len(b) for b in per_rank]
    if partial in ("pad", "drop"):
        assert len(set(counts)) == 1
    else:
        assert max(counts) - min(counts) <= 1
    # step by step, rank by rank: exactly G[start:] (drop: its full steps), each item once
    stream = [i for t in range(max(counts, default=0)) for b in per_rank if t < len(b) for i in b[t]]
    expected = g[start:].tolist()
    if partial == "drop":
        expected = expected[:plans[0].steps * world * batch]
    assert stream == expected
    # the rows from describe_plan agree
    rows = plan.describe_plan(n, world_size=world, workers=workers, batch_size=batch, partial=partial, start=start)
    assert [r["batches"] for r in rows] == counts
    assert sum(r["samples"] for r in rows) == len(expected)
    assert all(sum(r["worker_batches"]) == r["batches"] for r in rows)


def test_describe_plan_warns_about_empty_and_unbalanced_ranks():
    rows = plan.describe_plan(53, world_size=3, workers=2, batch_size=4, partial="pad")
    assert [r["batches"] for r in rows] == [5, 5, 5]
    assert [r["samples"] for r in rows] == [20, 17, 16] and [r["padded"] for r in rows] == [0, 3, 4]
    assert rows[0]["worker_batches"] == [3, 2] and plan.plan_warnings(rows) == []
    keep = plan.describe_plan(3, world_size=4, workers=1, batch_size=4, partial="keep")
    warns = plan.plan_warnings(keep)
    assert any("gets no batch" in w for w in warns) and any("hang" in w for w in warns)
    pad = plan.describe_plan(5, world_size=3, workers=3, batch_size=4, partial="pad")
    assert any("only padding" in w for w in plan.plan_warnings(pad))
    assert any("DataLoader workers get no batch" in w for w in plan.plan_warnings(pad))
    drop = plan.describe_plan(53, world_size=3, workers=0, batch_size=4, partial="drop")
    assert any("leaves 5 of 53" in w for w in plan.plan_warnings(drop))
    with pytest.raises(UsageError):
        plan.describe_plan(5, world_size=1, workers=-1, batch_size=1, partial="pad")


# -- ShardDataset state ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    lengths = [[48] * 5, [48] * 3, [48] * 6, [48] * 2, [48] * 4 + [20]]  # 21 samples, 5 shards
    return make_set(tmp_path_factory.mktemp("resume") / "s", lengths)


def _ds(path, **kw):
    kw.setdefault("seed", 4)
    kw.setdefault("shuffle_window", "3kB")
    return ShardDataset(path, **kw)


def _valid_keys(batches):
    return [k for b in batches for k, v in zip(b["keys"], b["valid"].tolist()) if v]


def test_state_is_small_and_counts_global_items(small_set):
    path, _ = small_set
    ds = _ds(path, batch_size=3, rank=1, world_size=2)
    ds.set_epoch(2)
    st0 = ds.state_dict()
    assert st0 == {"format": 1, "seed": 4, "epoch": 2, "consumed": 0, "num_items": 21,
                   "version_id": ds.shard_set.version_id, "shuffle": True, "window_bytes": 3000, "order": 2,
                   "recipe": ""}
    assert ds.state_dict(2)["consumed"] == 12 and ds.state_dict(99)["consumed"] == 21
    it = iter(ds)
    next(it)
    assert ds.state_dict()["consumed"] == 6  # counted by the in-process iterator
    ds.load_state_dict(ds.state_dict(1))
    assert ds.state_dict()["consumed"] == 6 and ds.state_dict(1)["consumed"] == 12
    with pytest.raises(UsageError):
        ds.state_dict(-1)


def test_load_state_dict_validates(small_set, tmp_path):
    path, _ = small_set
    state = _ds(path, batch_size=2).state_dict(3)
    with pytest.raises(UsageError, match="seed"):
        _ds(path, batch_size=2, seed=5).load_state_dict(state)
    with pytest.raises(UsageError, match="version"):
        _ds(path, batch_size=2).load_state_dict({**state, "version_id": "sk1-other"})
    other, _ = make_set(tmp_path / "o", [[48] * 20])
    with pytest.raises(UsageError, match="version"):
        _ds(other, batch_size=2).load_state_dict(state)
    with pytest.raises(UsageError, match="window_bytes"):
        _ds(path, batch_size=2, shuffle_window="4kB").load_state_dict(state)
    with pytest.raises(UsageError, match="format"):
        _ds(path).load_state_dict({**state, "format": 2})
    with pytest.raises(UsageError, match="consumed"):
        _ds(path).load_state_dict({**state, "consumed": 22})
    with pytest.raises(UsageError, match="lacks"):
        _ds(path).load_state_dict({k: v for k, v in state.items() if k != "epoch"})


@pytest.mark.parametrize("change, match", [
    ({"seed": "abc"}, "seed"), ({"seed": float("nan")}, "seed"), ({"consumed": float("nan")}, "consumed"),
    ({"consumed": 1.5}, "consumed"), ({"consumed": "3"}, "consumed"), ({"epoch": -1}, "epoch"),
    ({"epoch": 10**30}, "epoch"), ({"epoch": 2.5}, "epoch"), ({"epoch": None}, "epoch"),
    ({"num_items": "21"}, "num_items"), ({"consumed": True}, "consumed"),
])
def test_a_forged_state_is_a_usage_error(small_set, change, match):
    path, _ = small_set
    state = _ds(path, batch_size=2).state_dict(3)
    with pytest.raises(UsageError, match=match):
        _ds(path, batch_size=2).load_state_dict({**state, **change})


@pytest.mark.parametrize("epoch", [-1, 2**31, 10**30, 1.5, "3", None])
def test_set_epoch_refuses_what_is_no_epoch(small_set, epoch):
    path, _ = small_set
    with pytest.raises(UsageError, match="epoch"):
        _ds(path, batch_size=2).set_epoch(epoch)


def test_a_batch_too_big_for_memory_is_refused_before_allocating(small_set):
    path, _ = small_set
    with pytest.raises(UsageError, match="batch_size"):
        _ds(path, batch_size=10**9)
    with pytest.raises(UsageError, match="crop_seconds"):
        _ds(path, batch_size=2, crop_seconds=1e9)


def test_restore_reads_nothing_but_the_next_batch(small_set, monkeypatch):
    path, _ = small_set
    ref = _ds(path, batch_size=3)
    ref.set_epoch(1)
    full = list(ref)
    calls = []
    real = dataset_mod.os.preadv
    monkeypatch.setattr(dataset_mod.os, "preadv",
                        lambda fd, views, off: calls.append(len(views[0])) or real(fd, views, off))
    ds = _ds(path, batch_size=3)
    ds.load_state_dict({**ref.state_dict(4), "epoch": 1})
    assert calls == [] and ds.stats["items"] == 0 and len(ds) == len(full) - 4
    first = next(iter(ds))
    assert len(calls) == 3 and ds.stats["items"] == 3  # exactly that batch's items, nothing skipped-over
    assert first["keys"] == full[4]["keys"] and np.array_equal(first["audio"], full[4]["audio"])


@pytest.mark.parametrize("world0,batch0,world1,batch1", [(1, 4, 1, 4), (2, 3, 3, 2), (3, 2, 1, 5)])
@pytest.mark.parametrize("partial", ["pad", "keep"])
def test_elastic_resume_in_process(small_set, world0, batch0, world1, batch1, partial):
    path, _ = small_set
    ref = _ds(path, batch_size=1, partial="keep")
    ref.set_epoch(3)
    g_keys = _valid_keys(list(ref))
    for done in range(0, len(_ds(path, batch_size=batch0, rank=0, world_size=world0, partial=partial)) + 1):
        states = []
        for r in range(world0):
            ds = _ds(path, batch_size=batch0, rank=r, world_size=world0, partial=partial)
            ds.set_epoch(3)
            states.append(ds.state_dict(done))
        assert all(s == states[0] for s in states)
        consumed = states[0]["consumed"]
        rest = []
        for r in range(world1):
            ds = _ds(path, batch_size=batch1, rank=r, world_size=world1, partial=partial)
            ds.load_state_dict(states[0])
            rest.append(list(ds))
            assert len(list(ds)) == len(ds) == len(ds.plan())  # the next iteration is a whole epoch 3
        stream = [k for t in range(max(map(len, rest))) for b in rest if t < len(b)
                  for k, v in zip(b[t]["keys"], b[t]["valid"].tolist()) if v]
        assert stream == g_keys[consumed:]


def test_restore_applies_to_one_iteration_of_its_epoch(small_set):
    path, _ = small_set
    ds = _ds(path, batch_size=4)
    ds.set_epoch(0)
    e0 = _valid_keys(list(ds))
    ds.set_epoch(1)
    e1 = _valid_keys(list(ds))
    ds.load_state_dict({**ds.state_dict(2), "epoch": 0})
    assert ds.epoch == 0 and _valid_keys(list(ds)) == e0[8:]
    assert _valid_keys(list(ds)) == e0  # the next iteration is a whole epoch again
    ds.load_state_dict({**ds.state_dict(0), "epoch": 0, "consumed": 12})
    ds.set_epoch(1)  # another epoch drops the restored position
    assert _valid_keys(list(ds)) == e1
