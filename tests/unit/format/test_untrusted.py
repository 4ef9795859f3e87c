"""A shard set may come from anyone: its manifest cannot name files outside it, and its indexes cannot
exhaust memory (docs/format.md §4–§5)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zstandard

from shardkit import ShardSet, ShardSetWriter
from shardkit.errors import ManifestError, ShardIndexError
from shardkit.format import Manifest, ShardIndex
from shardkit.format.manifest import is_plain_name


@pytest.fixture()
def small_set(tmp_path):
    with ShardSetWriter(tmp_path / "set", sample_rate=16000) as w:
        w.write(np.zeros(1600, np.int16), key="k0")
    return tmp_path / "set"


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", "sub/shard.tar", ".hidden", "..", "a\\b", "",
                                  "a\x00b"])
def test_manifest_entries_must_be_plain_names_inside_the_set(small_set, name):
    doc = json.loads((small_set / "manifest.json").read_text())
    doc["shards"][0]["name"] = name
    (small_set / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match="not a plain file name"):
        ShardSet.open(small_set)


def test_a_shard_listed_twice_is_refused(small_set):
    doc = json.loads((small_set / "manifest.json").read_text())
    doc["shards"].append(doc["shards"][0])
    with pytest.raises(ManifestError, match="listed twice"):
        Manifest.from_json(json.dumps(doc).encode())


def test_plain_names():
    assert is_plain_name("shard-00000.tar") and is_plain_name("train_part-3.shard")
    assert not is_plain_name("../x") and not is_plain_name("x/y")


@pytest.mark.parametrize("content_size", [True, False])
def test_an_index_bomb_is_refused_without_inflating_it(content_size):
    bomb = zstandard.ZstdCompressor(level=3, write_content_size=content_size).compress(b"\0" * (512 << 20))
    with pytest.raises(ShardIndexError, match="not a real index"):
        ShardIndex.from_bytes(bomb, "bomb.index")


def test_a_real_index_round_trips(small_set):
    data = (small_set / "shard-00000.index").read_bytes()
    assert ShardIndex.from_bytes(data).to_bytes() == data
