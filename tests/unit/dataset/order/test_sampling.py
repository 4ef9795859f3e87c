"""The pure sampling pieces: systematic draws, weighted epochs drawn window by window, subsets,
mixture splits and interleaving."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardkit.dataset.order import sampling
from shardkit.dataset.order.shuffle import OrderSpec, window_layout
from shardkit.errors import UsageError


def _set(sizes, seed=0):
    ptr = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=ptr[1:])
    return ptr, np.random.default_rng(seed).integers(1, 50, size=int(ptr[-1])).astype(np.int64)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 100), min_size=1, max_size=40), st.integers(0, 300), st.floats(0, 0.999))
def test_systematic_counts_floor_or_ceil(w, m, u):
    w = np.asarray(w)
    if w.sum() <= 0:
        return
    counts = sampling.systematic_counts(w, m, u)
    assert counts.sum() == m and np.all(counts >= 0)
    expect = m * w / w.sum()
    assert np.all(counts >= np.floor(expect - 1e-9)) and np.all(counts <= np.ceil(expect + 1e-9))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 10), min_size=1, max_size=5), st.integers(1, 200), st.integers(1, 3),
       st.integers(1, 80), st.integers(0, 9))
def test_weighted_order_draws_within_windows(sizes, window, crops, m, epoch):
    ptr, nbytes = _set(sizes)
    n = int(ptr[-1])
    if n == 0:
        return
    w = np.arange(1, n + 1, dtype=np.float64)
    spec = OrderSpec(ptr, nbytes, seed=1, epoch=epoch, shuffle=True, window_bytes=window, crops_per_recording=crops)
    codes, bounds = sampling.weighted_order(spec, w, m)
    again = sampling.weighted_order(spec, w, m)
    assert np.array_equal(codes, again[0]) and np.array_equal(bounds, again[1])
    assert len(codes) == m and bounds[0] == 0 and bounds[-1] == m
    items, draws = codes % (n * crops), codes // (n * crops)
    # copies of an item are numbered 0, 1, ... in the epoch
    for item in set(items.tolist()):
        assert sorted(draws[items == item].tolist()) == list(range(int((items == item).sum())))
    # each window draws only from the samples of the plain shuffle's window
    samples, sbounds = window_layout(spec)
    for k in range(len(bounds) - 1):
        got = set((items[bounds[k]:bounds[k + 1]] // crops).tolist())
        assert got <= set(samples[sbounds[k]:sbounds[k + 1]].tolist())


def test_balanced_draws_are_balanced_and_change_per_epoch():
    labels = np.repeat(["rare", "mid", "common"], [2, 20, 100])
    w = sampling.label_weights(labels, 1.0)
    ptr, nbytes = _set([40, 40, 42])
    per_class = np.zeros(3)
    orders = []
    for epoch in range(20):
        spec = OrderSpec(ptr, nbytes, seed=0, epoch=epoch, shuffle=True, window_bytes=300)
        codes, _ = sampling.weighted_order(spec, w, 122)
        orders.append(codes)
        per_class += [np.isin(codes % 122, np.flatnonzero(labels == c)).sum() for c in ("rare", "mid", "common")]
    assert np.all(np.abs(per_class / per_class.mean() - 1) < 0.10)
    assert not np.array_equal(orders[0], orders[1])


def test_subset_sampler_maps_to_set_rows():
    ptr, nbytes = _set([5, 5, 5])
    rows = np.asarray([1, 2, 7, 11, 14])
    s = sampling.EpochSampler(ptr, nbytes, crops=2, seed=3, shuffle=True, window_bytes=60, rows=rows)
    codes, _ = s.order(0)
    assert s.num_items == 10 and sorted(codes.tolist()) == sorted(r * 2 + c for r in rows for c in (0, 1))
    assert sampling.subset_ptr(ptr, rows).tolist() == [0, 2, 3, 5]
    drawn = sampling.EpochSampler(ptr, nbytes, crops=1, seed=3, shuffle=True, window_bytes=60, rows=rows,
                                  samples_per_epoch=12)
    codes, _ = drawn.order(4)
    assert len(codes) == 12 and set((codes % 15).tolist()) == set(rows.tolist())
    assert drawn.recipe() != s.recipe() != ""
    with pytest.raises(UsageError, match="shuffle=True"):
        sampling.EpochSampler(ptr, nbytes, crops=1, seed=0, shuffle=False, window_bytes=60, samples_per_epoch=3)


def test_split_and_interleave():
    assert sampling.split_counts([0.75, 0.25], 10) == [8, 2]
    assert sampling.split_counts([1, 1, 1], 10) == [4, 3, 3]
    part, k = sampling.interleave([30, 10], seed=0, epoch=1)
    assert np.bincount(part).tolist() == [30, 10]
    for p in (0, 1):
        assert k[part == p].tolist() == list(range([30, 10][p]))  # each part in its own order
    for end in range(4, 41, 4):  # every prefix holds each part in proportion, within 1
        assert abs(np.count_nonzero(part[:end] == 1) - end / 4) <= 1


def test_check_weights():
    with pytest.raises(UsageError, match="shape"):
        sampling.check_weights([1.0, 2.0], 3)
    with pytest.raises(UsageError, match="finite"):
        sampling.check_weights([1.0, -1.0], 2)
    with pytest.raises(UsageError, match="all 0"):
        sampling.check_weights([0.0, 0.0], 2)
