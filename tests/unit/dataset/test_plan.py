"""The epoch plan: hashing, order, windows, split across ranks and workers, crop offsets."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardkit.dataset import plan
from shardkit.errors import UsageError

# -- hashing ---------------------------------------------------------------------------------------


def test_splitmix64_matches_reference_values():
    # the first outputs of the reference splitmix64 generator seeded with 0
    assert int(plan.splitmix64(0)) == 0xE220A8397B1DCDAF
    assert int(plan.splitmix64(0x9E3779B97F4A7C15)) == 0x6E789E6AA1B965F4


def test_hash64_broadcasts_and_never_warns():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = plan.hash64(-1, 2**70 + 5, np.arange(10, dtype=np.uint64))
        one = plan.hash64(-1, 2**70 + 5, 3)
    assert h.shape == (10,) and h.dtype == np.uint64
    assert int(h[3]) == int(one)
    assert len(set(h.tolist())) == 10


def test_permutation_is_deterministic_and_keyed():
    p = plan.permutation(1000, 7, 1)
    assert sorted(p.tolist()) == list(range(1000))
    assert np.array_equal(p, plan.permutation(1000, 7, 1))
    assert not np.array_equal(p, plan.permutation(1000, 7, 2))
    assert not np.array_equal(p, plan.permutation(1000, 8, 1))


# -- windows and the epoch order ---------------------------------------------------------------------


@given(st.lists(st.integers(1, 100), max_size=60), st.integers(1, 300))
def test_shuffle_windows_are_greedy_and_bounded(nbytes, window):
    b = plan.shuffle_windows(np.asarray(nbytes, dtype=np.int64), window)
    assert b[0] == 0 and b[-1] == len(nbytes)
    assert np.all(np.diff(b) >= 1)
    for w in range(len(b) - 1):
        total = sum(nbytes[b[w]:b[w + 1]])
        assert total <= window or b[w + 1] - b[w] == 1
        if b[w + 1] < len(nbytes):  # greedy: the next element would not have fitted
            assert total + nbytes[b[w + 1]] > window


shard_sizes = st.lists(st.integers(0, 12), min_size=0, max_size=6)


def _set(sizes, seed=0):
    ptr = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=ptr[1:])
    rng = np.random.default_rng(seed)
    return ptr, rng.integers(1, 50, size=int(ptr[-1])).astype(np.int64)


@settings(max_examples=150, deadline=None)
@given(shard_sizes, st.integers(1, 200), st.integers(1, 3), st.integers(0, 2**64 - 1), st.integers(0, 50))
def test_epoch_order_is_a_permutation_within_windows(sizes, window, crops, seed, epoch):
    ptr, nbytes = _set(sizes)
    n = int(ptr[-1])
    g = plan.epoch_order(ptr, nbytes, seed=seed, epoch=epoch, shuffle=True, window_bytes=window,
                         crops_per_recording=crops)
    assert g.dtype == np.int64
    assert sorted(g.tolist()) == list(range(n * crops))
    assert np.array_equal(g, plan.epoch_order(ptr, nbytes, seed=seed, epoch=epoch, shuffle=True,
                                              window_bytes=window, crops_per_recording=crops))
    # every window is one stretch (cyclically: the cut rotates) of the shards in keyed order, all
    # crops of its samples, of at most ``window`` stored bytes unless it is one larger sample
    perm = plan.permutation(len(sizes), seed, epoch, plan.TAG_SHARDS)
    seq = {s: i for i, s in enumerate(s for k in perm.tolist() for s in range(ptr[k], ptr[k + 1]))}
    bounds = plan.window_bounds(ptr, nbytes, seed=seed, epoch=epoch, shuffle=True, window_bytes=window,
                                crops_per_recording=crops)
    assert bounds[0] == 0 and bounds[-1] == n * crops and np.all(np.diff(bounds) > 0 if n else True)
    for w in range(len(bounds) - 1):
        items = g[bounds[w]:bounds[w + 1]]
        samples = sorted(set((items // crops).tolist()))
        assert sorted(items.tolist()) == [s * crops + c for s in samples for c in range(crops)]
        assert len(samples) == 1 or int(nbytes[samples].sum()) <= window
        pos = sorted(seq[s] for s in samples)
        gaps = sum((b - a) % n != 1 for a, b in zip(pos, pos[1:] + pos[:1]))
        assert gaps <= 1


def test_epoch_order_natural_without_shuffle():
    ptr, nbytes = _set([3, 0, 2])
    g = plan.epoch_order(ptr, nbytes, seed=1, epoch=4, shuffle=False, window_bytes=10,
                         crops_per_recording=2)
    assert g.tolist() == list(range(10))


def test_epoch_order_changes_with_epoch_and_seed():
    ptr, nbytes = _set([40, 30, 50, 20])
    def order(seed, epoch):
        return plan.epoch_order(ptr, nbytes, seed=seed, epoch=epoch, shuffle=True, window_bytes=500)
    assert np.array_equal(order(0, 0), order(0, 0))
    assert not np.array_equal(order(0, 0), order(0, 1))
    assert not np.array_equal(order(0, 0), order(1, 0))


def test_epoch_order_mixes_across_shards_in_one_window():
    ptr, nbytes = _set([50, 50])
    g = plan.epoch_order(ptr, nbytes, seed=3, epoch=0, shuffle=True, window_bytes=10**9)
    first = g[:50]
    assert 0 < np.count_nonzero(first < 50) < 50  # one window holds everything: both shards mix


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


# -- crop offsets ------------------------------------------------------------------------------------


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=50), st.integers(1, 5000),
       st.integers(1, 4), st.integers(0, 2**63), st.integers(0, 100))
def test_crop_offsets_in_range_and_deterministic(frames, crop, crops, seed, epoch):
    frames = np.asarray(frames, dtype=np.int64)
    kh = plan.hash64(np.arange(len(frames), dtype=np.uint64))
    cn = np.arange(len(frames)) % crops
    for shuffle in (True, False):
        off = plan.crop_offsets(kh, cn, frames, crop, seed=seed, epoch=epoch, shuffle=shuffle,
                                crops_per_recording=crops)
        assert off.dtype == np.int64 and off.shape == frames.shape
        assert np.all(off >= 0) and np.all(off <= np.maximum(frames - crop, 0))
        again = plan.crop_offsets(kh, cn, frames, crop, seed=seed, epoch=epoch, shuffle=shuffle,
                                  crops_per_recording=crops)
        assert np.array_equal(off, again)


def test_crop_offsets_move_with_epoch_when_training_and_are_fixed_otherwise():
    frames = np.full(200, 100_000, dtype=np.int64)
    kh = plan.hash64(np.arange(200, dtype=np.uint64))
    zero = np.zeros(200, dtype=np.int64)
    a = plan.crop_offsets(kh, zero, frames, 1000, seed=0, epoch=0, shuffle=True)
    b = plan.crop_offsets(kh, zero, frames, 1000, seed=0, epoch=1, shuffle=True)
    assert np.count_nonzero(a != b) > 190
    assert len(set(a.tolist())) > 190  # spread over the recording
    assert not plan.crop_offsets(kh, zero, frames, 1000, seed=0, epoch=0, shuffle=False).any()
    spread = plan.crop_offsets(kh[:3], np.arange(3), np.full(3, 10_000), 1000, seed=0, epoch=0,
                               shuffle=False, crops_per_recording=3)
    assert spread.tolist() == [0, 4500, 9000]
