"""The keyed randomness of every order: a splitmix64 hash of integer tuples, not numpy's generators, so an
epoch's order and crops are the same on every platform and numpy version.

Each decision hashes (seed, epoch, a domain tag, ...): the same (seed, epoch) drives independent choices.
"""

from __future__ import annotations

import numpy as np

MASK64 = (1 << 64) - 1
#: Domain tags: the same (seed, epoch) drives independent decisions.
TAG_SHARDS = 0x5348415244        # "SHARD"
TAG_WINDOW = 0x57494E444F57      # "WINDOW"
TAG_CROP = 0x43524F50            # "CROP"
TAG_ROTATE = 0x524F54415445      # "ROTATE"
TAG_WINDOWS = 0x57494E444F5753   # "WINDOWS"

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _u64(x: int | np.ndarray) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x.astype(np.uint64, copy=False)
    return np.asarray(int(x) & MASK64, dtype=np.uint64)


def splitmix64(x: np.ndarray | int) -> np.ndarray:
    """The splitmix64 finaliser, element-wise: uint64 → uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = _u64(x) + _GAMMA
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return np.asarray(z ^ (z >> _S31), dtype=np.uint64)


def hash64(*parts: int | np.ndarray) -> np.ndarray:
    """A uint64 hash of a tuple of integers; array parts broadcast (result has their shape).

    Python ints are taken modulo 2**64 (negative seeds work).
    """
    h = np.asarray(0, dtype=np.uint64)
    for part in parts:
        h = splitmix64(h ^ _u64(part))
    return h


def permutation(n: int, *key: int) -> np.ndarray:
    """A permutation of ``range(n)`` (int64, (n,)) keyed by the integers ``key``."""
    return np.argsort(hash64(*key, np.arange(n, dtype=np.uint64)), kind="stable").astype(np.int64)
