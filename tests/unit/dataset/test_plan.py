"""The split of an epoch across ranks and DataLoader workers (shardkit/dataset/plan.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardkit.dataset import plan
from shardkit.errors import UsageError

# -- the split across ranks and workers --------------------------------------------------------------


def _run(n, world, batch, partial, start=0):
    """Every rank's batches: lists of (positions, valid)."""
    out = []
    for r in range(world):
        p = plan.plan_rank(n, world_size=world, rank=r, batch_size=batch, partial=partial, start=start)
        out.append([p.positions(t) for t in range(len(p))])
    return out


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 120), st.integers(1, 4), st.integers(1, 9),
       st.sampled_from(plan.PARTIAL_POLICIES), st.data())
def test_split_partitions_the_epoch(n, world, batch, partial, data):
    start = data.draw(st.integers(0, n))
    ranks = _run(n, world, batch, partial, start)
    m = n - start
    counts = [len(r) for r in ranks]
    valid_positions = [p for r in ranks for pos, ok in r for p in pos[ok].tolist()]
    if partial == "keep":
        assert sorted(valid_positions) == list(range(start, n))  # exact coverage
        assert max(counts) - min(counts) <= 1
        assert all(0 < len(pos) <= batch and ok.all() for r in ranks for pos, ok in r)
        # read step by step, rank by rank, the epoch is G[start:] in order (independent of W)
        steps = max(counts)
        seq = [p for t in range(steps) for r in ranks if t < len(r) for p in r[t][0].tolist()]
        assert seq == list(range(start, n))
    elif partial == "pad":
        assert sorted(valid_positions) == list(range(start, n))
        assert len(set(counts)) == 1 and counts[0] == -(-m // (world * batch))
        assert all(len(pos) == batch for r in ranks for pos, _ in r)
        padded = [p for r in ranks for pos, ok in r for p in pos[~ok].tolist()]
        assert all(0 <= p < n for p in padded)
        assert len(padded) == counts[0] * world * batch - m
    else:
        assert len(set(counts)) == 1 and counts[0] == m // (world * batch)
        assert sorted(valid_positions) == list(range(start, start + counts[0] * world * batch))
        assert all(ok.all() and len(pos) == batch for r in ranks for pos, ok in r)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 200), st.integers(1, 4), st.integers(1, 8), st.sampled_from(plan.PARTIAL_POLICIES),
       st.integers(1, 3))
def test_workers_round_robin_yields_the_rank_batches_in_order(n, world, batch, partial, workers):
    p = plan.plan_rank(n, world_size=world, rank=world - 1, batch_size=batch, partial=partial)
    per_worker = [list(p.worker_batches(k, workers)) for k in range(workers)]
    assert sorted(t for w in per_worker for t in w) == list(range(len(p)))
    # the DataLoader asks workers round-robin and drops a worker once it is exhausted
    got, queues, active = [], [list(w) for w in per_worker], list(range(workers))
    while active:
        for k in list(active):
            if queues[k]:
                got.append(queues[k].pop(0))
            else:
                active.remove(k)
    assert got == list(range(len(p)))


@given(st.integers(1, 150), st.integers(1, 4), st.integers(1, 8), st.sampled_from(plan.PARTIAL_POLICIES),
       st.data())
def test_resuming_at_a_step_boundary_continues_the_same_plan(n, world, batch, partial, data):
    full = _run(n, world, batch, partial)
    steps = max((len(r) for r in full), default=0)
    s = data.draw(st.integers(0, steps))
    start = min(s * world * batch, n)
    tail = _run(n, world, batch, partial, start)
    for r in range(world):
        want = full[r][s:]
        assert len(tail[r]) == len(want)
        for (pa, va), (pb, vb) in zip(tail[r], want):
            assert np.array_equal(pa, pb) and np.array_equal(va, vb)


def test_pad_wraps_to_the_start_of_the_epoch():
    p = plan.plan_rank(10, world_size=2, rank=1, batch_size=4, partial="pad")
    assert len(p) == 2
    pos, ok = p.positions(1)
    assert pos.tolist() == [2, 3, 4, 5] and not ok.any()  # q 12..15 → G[2..5], all padding


def test_plan_rejects_bad_arguments():
    with pytest.raises(UsageError):
        plan.plan_rank(10, world_size=2, rank=2, batch_size=4, partial="pad")
    with pytest.raises(UsageError):
        plan.plan_rank(10, world_size=1, rank=0, batch_size=0, partial="pad")
    with pytest.raises(UsageError):
        plan.plan_rank(10, world_size=1, rank=0, batch_size=4, partial="wrap")
    with pytest.raises(UsageError):
        plan.plan_rank(10, world_size=1, rank=0, batch_size=4, partial="keep", start=11)
    with pytest.raises(IndexError):
        plan.plan_rank(10, world_size=1, rank=0, batch_size=4, partial="keep").batch(3)
