"""The epoch order and its shuffle windows (shardkit/dataset/order/shuffle.py): a permutation within
windows of bounded bytes, keyed by seed and epoch, natural without shuffle."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shardkit.dataset.order.keyed import TAG_SHARDS, permutation
from shardkit.dataset.order.shuffle import OrderSpec, epoch_order, shuffle_windows, window_bounds


@given(st.lists(st.integers(1, 100), max_size=60), st.integers(1, 300))
def test_shuffle_windows_are_greedy_and_bounded(nbytes, window):
    b = shuffle_windows(np.asarray(nbytes, dtype=np.int64), window)
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
    spec = OrderSpec(ptr, nbytes, seed=seed, epoch=epoch, shuffle=True, window_bytes=window,
                     crops_per_recording=crops)
    g = epoch_order(spec)
    assert g.dtype == np.int64
    assert sorted(g.tolist()) == list(range(n * crops))
    assert np.array_equal(g, epoch_order(OrderSpec(ptr, nbytes, seed=seed, epoch=epoch, shuffle=True,
                                                   window_bytes=window, crops_per_recording=crops)))
    # every window is one stretch (cyclically: the cut rotates) of the shards in keyed order, all
    # crops of its samples, of at most ``window`` stored bytes unless it is one larger sample
    perm = permutation(len(sizes), seed, epoch, TAG_SHARDS)
    seq = {s: i for i, s in enumerate(s for k in perm.tolist() for s in range(ptr[k], ptr[k + 1]))}
    bounds = window_bounds(spec)
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
    g = epoch_order(OrderSpec(ptr, nbytes, seed=1, epoch=4, shuffle=False, window_bytes=10, crops_per_recording=2))
    assert g.tolist() == list(range(10))


def test_epoch_order_changes_with_epoch_and_seed():
    ptr, nbytes = _set([40, 30, 50, 20])
    def order(seed, epoch):
        return epoch_order(OrderSpec(ptr, nbytes, seed=seed, epoch=epoch, shuffle=True, window_bytes=500))
    assert np.array_equal(order(0, 0), order(0, 0))
    assert not np.array_equal(order(0, 0), order(0, 1))
    assert not np.array_equal(order(0, 0), order(1, 0))


def test_epoch_order_mixes_across_shards_in_one_window():
    ptr, nbytes = _set([50, 50])
    g = epoch_order(OrderSpec(ptr, nbytes, seed=3, epoch=0, shuffle=True, window_bytes=10**9))
    first = g[:50]
    assert 0 < np.count_nonzero(first < 50) < 50  # one window holds everything: both shards mix
