"""transpose_lanes: interleaved frames (B, T, lanes) into rows per lane (B, lanes, T), any width."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shardkit.dataset.assemble.tensors import TRANSPOSE_FRAMES, transpose_lanes


@settings(max_examples=60, deadline=None)
@given(b=st.integers(1, 4), frames=st.integers(1, 3 * TRANSPOSE_FRAMES + 7), lanes=st.sampled_from([2, 3, 64, 128]),
       dtype=st.sampled_from([np.uint8, np.int16, np.float32]))
def test_equals_the_plain_transpose(b: int, frames: int, lanes: int, dtype: type) -> None:
    src = np.arange(b * frames * lanes).astype(dtype).reshape(b, frames, lanes)
    dst = np.zeros((b, lanes, frames), dtype=dtype)
    transpose_lanes(dst, src)
    np.testing.assert_array_equal(dst, src.transpose(0, 2, 1))


def test_mel_batch_block_edges() -> None:
    """A mel-u8 batch (128 bins, 501 frames: the last block is partial) is transposed exactly."""
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (8, 501, 128), dtype=np.uint8)
    dst = np.empty((8, 128, 501), dtype=np.uint8)
    transpose_lanes(dst, src)
    np.testing.assert_array_equal(dst, src.transpose(0, 2, 1))
