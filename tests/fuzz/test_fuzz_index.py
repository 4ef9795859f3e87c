"""Fuzzing shard indexes: arbitrary bytes, zstd frames of arbitrary bytes and of arbitrary msgpack,
bombs, and a real index with one node replaced or removed — through ShardIndex.from_bytes and, with
the manifest's size and sha256 updated (a consistent forgery), through ShardSet.open and a read."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import shutil

import msgpack
import pytest
import zstandard
from fuzz_helpers import drop_at, examples, guarded, msgpack_values, replace_at
from hypothesis import given
from hypothesis import strategies as st
from read_fixtures import make_set

from shardkit.errors import ShardIndexError
from shardkit.format import ShardIndex
from shardkit.format.index import max_index_bytes
from shardkit.read import ShardSet


@pytest.fixture(scope="module")
def real_set(tmp_path_factory):
    return make_set(tmp_path_factory.mktemp("fuzzset") / "set", [[160, 120, 100]])[0]


def _zstd(raw: bytes, *, size: bool = True) -> bytes:
    return zstandard.ZstdCompressor(write_content_size=size).compress(raw)


@functools.cache
def _bomb(mib: int, declared: bool) -> bytes:
    """A zstd frame of ``mib`` MiB of zeros, compressed 1 MiB at a time (never held whole)."""
    out = io.BytesIO()
    zeros = bytes(1 << 20)
    writer = zstandard.ZstdCompressor().stream_writer(out, size=(mib << 20) if declared else -1, closefd=False)
    for _ in range(mib):
        writer.write(zeros)
    writer.close()
    return out.getvalue()


@examples(60)
@given(st.binary(max_size=300))
def test_bytes(data):
    guarded(ShardIndex.from_bytes, data)
    guarded(ShardIndex.from_bytes, _zstd(data))


@examples(60)
@given(msgpack_values())
def test_msgpack_documents(doc):
    raw = msgpack.packb(doc, use_bin_type=True)
    guarded(ShardIndex.from_bytes, _zstd(raw))
    if isinstance(doc, dict):
        raw = msgpack.packb({**doc, "format": "shardkit.index", "format_version": 2}, use_bin_type=True)
        guarded(ShardIndex.from_bytes, _zstd(raw))


@examples(6)
@given(st.sampled_from([1, 256, 2048]), st.booleans())
def test_bombs_are_refused_within_the_cap(mib, declared):
    bomb = _bomb(mib, declared)
    assert len(bomb) < 200_000
    cap = max_index_bytes(len(bomb))  # the inflated bytes are held once more while joined: 2 × cap
    got = guarded(ShardIndex.from_bytes, bomb, max_alloc=2 * cap + (8 << 20))
    assert isinstance(got, ShardIndexError)
    if mib > 64:
        assert "not a real index" in str(got)


def _install(root, data):
    (root / "shard-00000.index").write_bytes(data)
    doc = json.loads((root / "manifest.json").read_bytes())
    doc["shards"][0]["index_bytes"] = len(data)
    doc["shards"][0]["index_sha256"] = hashlib.sha256(data).hexdigest()
    (root / "manifest.json").write_text(json.dumps(doc))


def _open_and_read(root):
    ss = ShardSet.open(root)
    try:
        for i in range(len(ss)):
            ss.read_frames(i)
            ss.read_meta(i)
    finally:
        ss.close()


@examples(150)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=5), msgpack_values(6), st.booleans())
def test_real_index_mutated(real_set, tmp_path_factory, path, value, drop):
    doc = msgpack.unpackb(zstandard.ZstdDecompressor().decompress((real_set / "shard-00000.index").read_bytes()),
                          raw=False, strict_map_key=False)
    doc = drop_at(doc, path) if drop else replace_at(doc, path, value)
    data = _zstd(msgpack.packb(doc, use_bin_type=True))
    guarded(ShardIndex.from_bytes, data)
    root = tmp_path_factory.mktemp("i") / "set"
    shutil.copytree(real_set, root)
    _install(root, data)
    guarded(_open_and_read, root)
