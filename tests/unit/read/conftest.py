"""Make ``tests/read_fixtures.py`` importable as ``read_fixtures`` (tests/ has no __init__.py); the shard
sets the read tests share."""

import sys
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parents[2])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from read_fixtures import make_set  # noqa: E402  (importable only after the path above)


@pytest.fixture
def segs(tmp_path):
    """22 samples of 160 frames (tail=keep: two short ones) in 4 shards, labels a/b/c: (path, by_key)."""
    lengths = [[160] * 6, [160] * 5 + [90], [160] * 7, [160, 160, 40]]
    return make_set(tmp_path / "segs", lengths, labels=("a", "b", "c"))
