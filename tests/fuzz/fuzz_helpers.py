"""Helpers of the fuzz suite (a plain module: a conftest.py here would clash with the other conftests):
:func:`guarded` runs a parser on untrusted bytes and fails the example on
any exception outside shardkit's tree or an allocation beyond ``MAX_ALLOC`` (traced by tracemalloc);
:func:`json_values` / :func:`msgpack_values` draw documents. Example counts are modest (the whole suite
runs in well under a minute on 2 cores); deadlines are off (tests/conftest.py)."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from shardkit.errors import ShardkitError

#: what one parse of a few KB of untrusted bytes may allocate at most
MAX_ALLOC = 64 << 20
#: ``SHARDKIT_FUZZ_SCALE=20 pytest tests/fuzz`` runs 20× the examples (a longer hunt than CI's)
SCALE = max(1, int(os.environ.get("SHARDKIT_FUZZ_SCALE", "1")))


def examples(n: int) -> settings:
    """Hypothesis settings with ``n`` × :data:`SCALE` examples."""
    return settings(max_examples=n * SCALE)


def guarded(fn: Callable[..., Any], *args: Any, max_alloc: int = MAX_ALLOC, **kwargs: Any) -> Any:
    """``fn(*args)``; a :class:`ShardkitError` is fine (returned), anything else — or a traced peak
    allocation of ``max_alloc`` bytes or more — fails the example."""
    tracemalloc.start()
    try:
        return fn(*args, **kwargs)
    except ShardkitError as exc:
        assert str(exc).strip() and "\n" not in str(exc).strip(), f"not a one-line message: {exc!r}"
        return exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < max_alloc, f"{getattr(fn, '__qualname__', fn)} allocated {peak} bytes"


_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20))


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """JSON-able documents (strings as keys)."""
    return st.recursive(_scalars, lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=10), c,
                                                                                        max_size=5),
                        max_leaves=max_leaves)


def msgpack_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """msgpack-able documents: bytes, ints of every width, and keys that are not strings."""
    scalars = _scalars | st.binary(max_size=20) | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    scalars = scalars.filter(lambda v: not isinstance(v, int) or -(2**63) <= v < 2**64)
    return st.recursive(scalars, lambda c: st.lists(c, max_size=5) | st.dictionaries(
        st.text(max_size=8) | st.integers(min_value=0, max_value=99) | st.binary(max_size=4), c, max_size=5),
        max_leaves=max_leaves)


def replace_at(doc: Any, path: list[int], value: Any) -> Any:
    """``doc`` with the node reached by ``path`` (each step picks a child by number, modulo) replaced."""
    if not path or not isinstance(doc, (dict, list)) or not doc:
        return value
    if isinstance(doc, dict):
        key = sorted(doc, key=str)[path[0] % len(doc)]
        return {**doc, key: replace_at(doc[key], path[1:], value)}
    i = path[0] % len(doc)
    return [*doc[:i], replace_at(doc[i], path[1:], value), *doc[i + 1:]]


def drop_at(doc: Any, path: list[int]) -> Any:
    """``doc`` with the key or item reached by ``path`` removed."""
    if not isinstance(doc, (dict, list)) or not doc:
        return doc
    if isinstance(doc, dict):
        key = sorted(doc, key=str)[path[0] % len(doc)] if path else None
        if key is None:
            return doc
        if len(path) == 1:
            return {k: v for k, v in doc.items() if k != key}
        return {**doc, key: drop_at(doc[key], path[1:])}
    if not path:
        return doc
    i = path[0] % len(doc)
    if len(path) == 1:
        return [*doc[:i], *doc[i + 1:]]
    return [*doc[:i], drop_at(doc[i], path[1:]), *doc[i + 1:]]
