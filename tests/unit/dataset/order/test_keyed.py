"""The keyed hash every order and crop comes from (shardkit/dataset/order/keyed.py)."""

import warnings

import numpy as np

from shardkit.dataset.order import keyed


def test_splitmix64_matches_reference_values():
    # the first outputs of the reference splitmix64 generator seeded with 0
    assert int(keyed.splitmix64(0)) == 0xE220A8397B1DCDAF
    assert int(keyed.splitmix64(0x9E3779B97F4A7C15)) == 0x6E789E6AA1B965F4


def test_hash64_broadcasts_and_never_warns():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = keyed.hash64(-1, 2**70 + 5, np.arange(10, dtype=np.uint64))
        one = keyed.hash64(-1, 2**70 + 5, 3)
    assert h.shape == (10,) and h.dtype == np.uint64
    assert int(h[3]) == int(one)
    assert len(set(h.tolist())) == 10


def test_permutation_is_deterministic_and_keyed():
    p = keyed.permutation(1000, 7, 1)
    assert sorted(p.tolist()) == list(range(1000))
    assert np.array_equal(p, keyed.permutation(1000, 7, 1))
    assert not np.array_equal(p, keyed.permutation(1000, 7, 2))
    assert not np.array_equal(p, keyed.permutation(1000, 8, 1))
