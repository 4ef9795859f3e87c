"""Fuzzing ``.mp`` members as the reader and browse parse them: arbitrary bytes and arbitrary msgpack
through the decoder, and arbitrary bytes in a real set's member through ShardSet.read_meta and
ShardDataset(with_metadata=True) with both on_error policies."""

from __future__ import annotations

import shutil

import msgpack
import pytest
from fuzz_helpers import examples, guarded, msgpack_values
from hypothesis import given
from hypothesis import strategies as st
from read_fixtures import make_set

from shardkit.dataset import ShardDataset
from shardkit.encode import meta as meta_codec
from shardkit.read import ShardSet


@pytest.fixture(scope="module")
def real_set(tmp_path_factory):
    return make_set(tmp_path_factory.mktemp("fuzzset") / "set", [[160, 120]])[0]


@examples(60)
@given(st.binary(max_size=300))
def test_bytes(data):
    guarded(meta_codec.decode, data)


@examples(60)
@given(msgpack_values())
def test_msgpack_documents(doc):
    got = guarded(meta_codec.decode, msgpack.packb(doc, use_bin_type=True))
    assert isinstance(got, (dict, Exception))


@examples(60)
@given(st.binary(min_size=1, max_size=64), st.sampled_from(["raise", "skip"]))
def test_member_bytes_through_the_reader(real_set, tmp_path_factory, junk, on_error):
    root = tmp_path_factory.mktemp("mp") / "set"
    shutil.copytree(real_set, root)
    ss = ShardSet.open(root)
    off, size = int(ss.meta_offset[1]), int(ss.meta_size[1])
    ss.close()
    data = bytearray((root / "shard-00000.tar").read_bytes())
    data[off: off + size] = (junk * (size // len(junk) + 1))[:size]
    (root / "shard-00000.tar").write_bytes(bytes(data))

    def read_all():
        with ShardSet.open(root) as s:
            s.read_meta(1)
        ds = ShardDataset(root, batch_size=2, shuffle=False, with_metadata=True, on_error=on_error)
        return [b["meta"] for b in ds]

    guarded(read_all)
