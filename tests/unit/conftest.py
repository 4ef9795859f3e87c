"""The shard sets the read and dataset tests share (``read_fixtures`` is importable through pytest's ``pythonpath``)."""

import pytest
from read_fixtures import make_set


@pytest.fixture
def segs(tmp_path):
    """22 samples of 160 frames (tail=keep: two short ones) in 4 shards, labels a/b/c: (path, by_key)."""
    lengths = [[160] * 6, [160] * 5 + [90], [160] * 7, [160, 160, 40]]
    return make_set(tmp_path / "segs", lengths, labels=("a", "b", "c"))
