"""shardkit.reindex rebuilds a damaged or missing index from its shard, byte for byte (issue 14, part 2)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from forge import edit_index, edit_shard

import shardkit
from shardkit import ShardSet, ShardSetWriter
from shardkit.errors import IntegrityError, ShardIndexError

GOLDEN = sorted(p for p in (Path(__file__).resolve().parents[2] / "golden").glob("v*/*")
                if (p / "manifest.json").exists())


@pytest.fixture()
def packed(tmp_path):
    root = tmp_path / "set"
    with ShardSetWriter(root, sample_rate=16000, shard_size="20KB", vocabulary=["a", "b", "c"]) as w:
        for k in range(8):
            w.write(np.full(1600 + k, k, np.int16), key=f"src/k{k}", primary_label=[None, "a", "b"][k % 3],
                    secondary_labels=["c"] if k == 4 else [], source=f"rec{k}.ogg", start=k * 10,
                    extra={"rating": 4.5})
    return root


def _snapshot(root):
    return {p.name: p.read_bytes() for p in root.iterdir()}


@pytest.mark.parametrize("damage", ["delete", "truncate", "garbage", "forged labels"])
def test_a_damaged_index_is_rebuilt_byte_identical(packed, damage):
    before = _snapshot(packed)
    index = packed / "shard-00001.index"
    if damage == "delete":
        index.unlink()
    elif damage == "truncate":
        index.write_bytes(before["shard-00001.index"][:40])
    elif damage == "garbage":
        index.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(100))
    else:
        edit_index(packed, 1, lambda idx: idx.columns["label"].__setitem__(0, 9))
    assert not shardkit.verify(packed).ok
    with pytest.raises(shardkit.ShardkitError, match="shardkit reindex"):
        ShardSet.open(packed)
    result = shardkit.reindex(packed)
    assert result.rebuilt == ["shard-00001.index"] and len(result.kept) == 2
    assert _snapshot(packed) == before  # index and manifest: the very bytes the writer wrote
    assert shardkit.verify(packed).ok


def test_every_index_rebuilt_with_force_is_identical(packed):
    before = _snapshot(packed)
    for p in packed.glob("*.index"):
        p.unlink()
    assert sorted(shardkit.reindex(packed).rebuilt) == sorted(n for n in before if n.endswith(".index"))
    assert _snapshot(packed) == before
    assert shardkit.reindex(packed, force=True).kept == [] and _snapshot(packed) == before


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_sets_of_every_version_and_codec_reindex_identically(path, tmp_path):
    copy = tmp_path / "g"
    shutil.copytree(path, copy)
    before = _snapshot(copy)
    shardkit.reindex(copy, force=True)
    assert _snapshot(copy) == before


def test_a_shard_that_fails_its_sha256_is_refused(packed):
    data = bytearray((packed / "shard-00000.tar").read_bytes())
    data[700] ^= 1
    (packed / "shard-00000.tar").write_bytes(bytes(data))
    (packed / "shard-00000.index").unlink()
    with pytest.raises(IntegrityError, match=r"shard-00000\.tar: shard fails its size or sha256.*re-download"):
        shardkit.reindex(packed)
    assert not (packed / "shard-00000.index").exists()


def test_a_label_not_in_the_vocabulary_is_named(packed):
    import json

    doc = json.loads((packed / "manifest.json").read_text())
    doc["vocabulary"] = ["a", "c"]
    (packed / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ShardIndexError, match=r"sample 'src/k\d'.*label 'b' is not in the manifest's vocabulary"):
        shardkit.reindex(packed, force=True)


def test_the_manifest_follows_a_rebuilt_index_of_another_encoding(packed):
    # an index written by another tool (other zstd level): reindex writes the canonical one and the manifest
    import zstandard

    from shardkit.format import ShardIndex

    idx = ShardIndex.load(packed / "shard-00000.index")
    raw = zstandard.ZstdDecompressor().decompress((packed / "shard-00000.index").read_bytes())
    (packed / "shard-00000.index").write_bytes(zstandard.ZstdCompressor(level=1).compress(raw))
    edit_index(packed, 0, lambda i: None)  # manifest hashes follow the foreign index: verify OK
    assert shardkit.verify(packed).ok
    assert shardkit.reindex(packed).rebuilt == []
    shardkit.reindex(packed, force=True)
    assert (packed / "shard-00000.index").read_bytes() == idx.to_bytes()
    entry = shardkit.format.Manifest.load(packed).shards[0]
    assert entry.index_sha256 == hashlib.sha256(idx.to_bytes()).hexdigest() and shardkit.verify(packed).ok


def test_a_shard_with_a_forged_member_is_refused(packed):
    from forge import set_header

    from shardkit.format import ShardIndex

    off = ShardIndex.load(packed / "shard-00000.index").columns["wav_offset"][0] - 512
    edit_shard(packed, 0, lambda data: set_header(data, off, typeflag=b"2", linkname="/etc/passwd"))
    with pytest.raises(shardkit.FormatError, match="symlink, not a regular file"):
        shardkit.reindex(packed, force=True)
