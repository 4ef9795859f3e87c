"""Where crops start (shardkit/dataset/order/crops.py): in range, keyed per epoch when training, fixed and
spread evenly for evaluation."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from shardkit.dataset.order.crops import crop_offsets
from shardkit.dataset.order.keyed import hash64


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=50), st.integers(1, 5000),
       st.integers(1, 4), st.integers(0, 2**63), st.integers(0, 100))
def test_crop_offsets_in_range_and_deterministic(frames, crop, crops, seed, epoch):
    frames = np.asarray(frames, dtype=np.int64)
    kh = hash64(np.arange(len(frames), dtype=np.uint64))
    cn = np.arange(len(frames)) % crops
    for shuffle in (True, False):
        off = crop_offsets(kh, cn, frames, crop, seed=seed, epoch=epoch, shuffle=shuffle,
                           crops_per_recording=crops)
        assert off.dtype == np.int64 and off.shape == frames.shape
        assert np.all(off >= 0) and np.all(off <= np.maximum(frames - crop, 0))
        again = crop_offsets(kh, cn, frames, crop, seed=seed, epoch=epoch, shuffle=shuffle,
                             crops_per_recording=crops)
        assert np.array_equal(off, again)


def test_crop_offsets_move_with_epoch_when_training_and_are_fixed_otherwise():
    frames = np.full(200, 100_000, dtype=np.int64)
    kh = hash64(np.arange(200, dtype=np.uint64))
    zero = np.zeros(200, dtype=np.int64)
    a = crop_offsets(kh, zero, frames, 1000, seed=0, epoch=0, shuffle=True)
    b = crop_offsets(kh, zero, frames, 1000, seed=0, epoch=1, shuffle=True)
    assert np.count_nonzero(a != b) > 190
    assert len(set(a.tolist())) > 190  # spread over the recording
    assert not crop_offsets(kh, zero, frames, 1000, seed=0, epoch=0, shuffle=False).any()
    spread = crop_offsets(kh[:3], np.arange(3), np.full(3, 10_000), 1000, seed=0, epoch=0,
                          shuffle=False, crops_per_recording=3)
    assert spread.tolist() == [0, 4500, 9000]
