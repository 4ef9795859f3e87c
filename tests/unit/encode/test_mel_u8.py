"""mel-u8 codec: quantisation within its stated bound, standard .npy members, frame-major payload."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardkit.encode import mel_u8
from shardkit.encode.mel_u8 import NPY_HEADER_BYTES
from shardkit.errors import FormatError


@given(n_mels=st.integers(1, 160), frames=st.integers(1, 400), scale=st.floats(0.01, 60.0),
       offset=st.floats(-120.0, 60.0), seed=st.integers(0, 2**32 - 1))
def test_round_trip_error_within_the_stated_bound(n_mels, frames, scale, offset, seed):
    db = (offset + scale * np.random.default_rng(seed).standard_normal((n_mels, frames))).astype(np.float32)
    q, lo, hi = mel_u8.quantize(db)
    assert q.dtype == np.uint8 and q.shape == db.shape
    assert lo == pytest.approx(float(db.min())) and hi == pytest.approx(float(db.max()))
    err = np.abs(mel_u8.dequantize(q, lo, hi) - db).max()
    # the scheme's half step, plus float32 rounding of values up to ~|offset| + 5·scale
    assert err <= mel_u8.max_error_db(lo, hi) + 1e-5 * max(1.0, abs(lo), abs(hi))
    assert q.min() == 0 and q.max() == (255 if hi > lo else 0)


def test_an_80_db_range_is_within_0_157_db():
    db = np.linspace(-70, 10, 128 * 313, dtype=np.float32).reshape(128, 313)
    q, lo, hi = mel_u8.quantize(db)
    assert mel_u8.max_error_db(lo, hi) == pytest.approx(80 / 510)
    assert np.abs(mel_u8.dequantize(q, lo, hi) - db).max() <= 80 / 510 + 1e-4


def test_constant_spectrogram_stores_zeros():
    q, lo, hi = mel_u8.quantize(np.full((4, 5), -42.0, np.float32))
    assert not q.any() and lo == hi == -42.0
    assert np.all(mel_u8.dequantize(q, lo, hi) == -42.0)


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.zeros(5), np.array([[0.0, np.nan]])])
def test_bad_arrays_are_refused(bad):
    with pytest.raises(FormatError):
        mel_u8.quantize(bad)


@pytest.mark.parametrize("shape", [(1, 1), (128, 313), (256, 9375), (64, 10**7)])
def test_npy_member_is_standard_and_frame_major(shape):
    n_mels, frames = shape
    frames = min(frames, 2000)  # the header is what matters for huge shapes; keep the array small
    q = np.random.default_rng(0).integers(0, 256, (n_mels, frames), dtype=np.uint8)
    data = mel_u8.encode(q)
    assert len(data) == NPY_HEADER_BYTES + q.size
    loaded = np.load(io.BytesIO(data))
    assert loaded.shape == (n_mels, frames) and loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, q)
    np.testing.assert_array_equal(mel_u8.decode(data), q)
    # a crop of frames [a, b) is one contiguous byte range after the header
    a, b = frames // 3, frames // 3 + max(1, frames // 4)
    crop = np.frombuffer(data[NPY_HEADER_BYTES + a * n_mels: NPY_HEADER_BYTES + b * n_mels], np.uint8)
    np.testing.assert_array_equal(crop.reshape(b - a, n_mels).T, q[:, a:b])
    assert len(mel_u8.npy_header(n_mels, 10**7)) == NPY_HEADER_BYTES


def test_a_header_that_is_not_ours_is_refused():
    buf = io.BytesIO()
    np.save(buf, np.zeros((3, 4), np.uint8))  # C order: not a mel-u8 member
    with pytest.raises(FormatError):
        mel_u8.decode(buf.getvalue())
    with pytest.raises(FormatError):
        mel_u8.decode(b"RIFF" + bytes(200))
