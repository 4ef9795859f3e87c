"""Targets of a label layer per item (shardkit.dataset.targets), against a direct reference: every
window's overlap with the crop, computed one by one."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from layer_reference import window_targets

from shardkit.dataset.order.grid import grid_windows
from shardkit.dataset.targets import NoTargets, Targets
from shardkit.format.layers import Layer

WINDOW, HOP = 5.0, 2.5


def _layer(rng, windows=(0, 1, 2, 4, 5, 7)):
    values = rng.random((len(windows), 3)).astype(np.float16)
    return Layer(name="w", kind="windows", classes=["a", "b", "c"], values=values, sources=["s.ogg"],
                 source_ptr=np.array([0, len(windows)]), window=np.array(windows), window_seconds=WINDOW,
                 hop_seconds=HOP)


@pytest.mark.parametrize("reduce", ["mean", "max"])
@given(st.floats(0, 25), st.one_of(st.just(0.0), st.floats(1e-6, 6)), st.integers(0, 2**31))
def test_a_crop_gets_the_combination_of_the_windows_it_overlaps(reduce, begin, seconds, seed):
    layer = _layer(np.random.default_rng(seed))
    # two samples of one source: the second starts at 10 s in it (a segment), classes in another order
    t = Targets(layer, ["c", "x", "a", "b"], keys=["k0", "k1"], source_id=np.array([0, 0]), source_names=["s.ogg"],
                start_seconds=np.array([0.0, 10.0]), reduce=reduce, crop_seconds=6.0)
    out, mask = np.empty((2, 4), np.float32), np.empty(2, bool)
    t.fill(np.array([0, 1]), np.array([begin, begin]), np.array([seconds, seconds]), out, mask)
    for row, start in enumerate((0.0, 10.0)):
        ref = window_targets(layer, "s.ogg", start + begin, start + begin + seconds, reduce)
        assert mask[row] == (ref is not None)
        expected = np.zeros(4, np.float32) if ref is None else np.array([ref[2], 0, ref[0], ref[1]], np.float32)
        np.testing.assert_allclose(out[row], expected, rtol=1e-6, atol=1e-6)


def test_samples_layer_rows_and_mask():
    layer = Layer(name="s", kind="samples", classes=["b", "a"], values=np.array([[0.25, 0.5]], np.float16),
                  keys=["k1"])
    t = Targets(layer, ["a", "b"], keys=["k0", "k1"], source_id=np.array([0, 0]), source_names=["s"],
                start_seconds=np.zeros(2))
    out, mask = np.empty((3, 2), np.float32), np.empty(3, bool)
    t.fill(np.array([1, 0, 1]), np.zeros(3), np.ones(3), out, mask)
    np.testing.assert_array_equal(out, [[0.5, 0.25], [0, 0], [0.5, 0.25]])
    np.testing.assert_array_equal(mask, [True, False, True])


def test_a_source_the_layer_lacks_is_masked():
    t = Targets(_layer(np.random.default_rng(0)), ["a"], keys=["k"], source_id=np.array([0]),
                source_names=["other.ogg"], start_seconds=np.zeros(1), crop_seconds=5)
    out, mask = np.empty((1, 1), np.float32), np.empty(1, bool)
    t.fill(np.array([0]), np.zeros(1), np.full(1, 5.0), out, mask)
    assert not mask[0] and out[0, 0] == 0


@pytest.mark.parametrize("reduce", ["mean", "max"])
@pytest.mark.parametrize("joined", [["a", "b", "q", "c"], ["q", "c"], ["c", "x", "a", "b"], ["q"]])
def test_targets_joined_equal_targets_made_for_those_classes(reduce, joined):
    # a Mixture's part: its targets in its own classes, moved by name into the joined classes
    layer, kw = _layer(np.random.default_rng(3)), dict(keys=["k0", "k1"], source_id=np.array([0, 0]),
                                                      source_names=["s.ogg"], start_seconds=np.array([0.0, 10.0]),
                                                      reduce=reduce, crop_seconds=6.0)
    own = ["c", "x", "a", "b"]
    moved = Targets(layer, own, **kw).joined(np.array([joined.index(c) if c in joined else -1 for c in own]),
                                             len(joined))
    direct = Targets(layer, joined, **kw)
    samples, begin, seconds = np.array([0, 1, 1, 0]), np.array([0.0, 3.0, 14.0, 1.0]), np.array([6.0, 6.0, 6.0, 0.0])
    got = [np.full((4, len(joined)), 9, np.float32), np.empty(4, bool)]
    ref = [np.full((4, len(joined)), 7, np.float32), np.empty(4, bool)]
    moved.fill(samples, begin, seconds, *got)
    direct.fill(samples, begin, seconds, *ref)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])
    assert got[1][:2].all() and not got[1][3]  # a crop of no audio overlaps no window


def test_no_targets_are_masked_zeros():
    out, mask = np.ones((2, 3), np.float32), np.ones(2, bool)
    NoTargets(3).fill(np.array([0, 1]), np.zeros(2), np.ones(2), out, mask)
    assert not out.any() and not mask.any()


@pytest.mark.parametrize("tail, expected", [("pad", [(0, 0), (0, 4), (0, 8), (1, 0), (2, 0), (2, 4)]),
                                             ("drop", [(0, 0), (0, 4), (2, 0), (2, 4)])])
def test_grid_windows(tail, expected):
    samples, offsets, k = grid_windows(np.array([10, 3, 8, 0]), 4, tail)
    assert list(zip(samples.tolist(), offsets.tolist())) == expected
    assert (offsets == 4 * k).all()


def test_grid_windows_of_a_fractional_step():
    # 5 s of a 32 kHz log-mel with hop 512 is 312.5 frames: windows start at round(k × 312.5)
    _, offsets, k = grid_windows(np.array([939]), 312.5, "pad")
    assert offsets.tolist() == [0, 312, 625, 938] and k.tolist() == [0, 1, 2, 3]
    assert grid_windows(np.array([939]), 312.5, "drop")[1].tolist() == [0, 312, 625]
