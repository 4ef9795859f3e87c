"""How unrelated consecutive epochs' orders are (issue 20, item 5): the overlap of their first halves
and the mean |position change| of a sample, for sets of 1, 8 and 64 shards, against a uniform
permutation (0.5 and 1/3). Prints the figures (pytest -s)."""

import numpy as np
import pytest

from shardkit.dataset.order.sampling import first_half_overlap, position_change
from shardkit.dataset.order.shuffle import OrderSpec, epoch_order

#: 5 s of 32 kHz mono wav16 per sample: 1,347 samples are the issue's 431 MB set
SAMPLE_BYTES = 320_044
PAIRS = 200


def _sizes(n, shards):
    per = np.full(shards, n // shards)
    per[: n % shards] += 1
    ptr = np.zeros(shards + 1, np.int64)
    np.cumsum(per, out=ptr[1:])
    return ptr, np.full(n, SAMPLE_BYTES, np.int64)


@pytest.mark.parametrize("n", [1347, 13470])
@pytest.mark.parametrize("shards", [1, 8, 64])
def test_consecutive_epochs_are_as_unrelated_as_uniform_shuffles(n, shards):
    ptr, nbytes = _sizes(n, shards)
    orders = [epoch_order(OrderSpec(ptr, nbytes, seed=0, epoch=e, shuffle=True, window_bytes=256_000_000))
              for e in range(PAIRS + 1)]
    overlap = np.mean([first_half_overlap(orders[e], orders[e + 1]) for e in range(PAIRS)])
    change = np.mean([position_change(orders[e], orders[e + 1]) for e in range(PAIRS)])
    print(f"\n{n} samples ({n * SAMPLE_BYTES / 1e9:.2f} GB), {shards} shard(s), 256MB windows, {PAIRS} epoch "
          f"pairs: first-half overlap {overlap:.3f} (uniform 0.500), mean |position change| {change:.3f} "
          "(uniform 0.333)")
    assert abs(overlap - 0.5) <= 0.05
    assert abs(change - 1 / 3) <= 0.05


def test_uniform_reference_values():
    rng = np.random.default_rng(0)
    pairs = [(rng.permutation(1347), rng.permutation(1347)) for _ in range(PAIRS)]
    assert abs(np.mean([first_half_overlap(a, b) for a, b in pairs]) - 0.5) < 0.01
    assert abs(np.mean([position_change(a, b) for a, b in pairs]) - 1 / 3) < 0.01
