"""ShardSet: loading the manifest and indexes into columns, reads by offset, and its errors."""

import hashlib
import io
import json
import os
import pickle
import tarfile

import msgpack
import numpy as np
import pytest
import soundfile as sf
import zstandard
from read_fixtures import Sample, make_set, wav_bytes, write_shard_set

from shardkit import format as fmt
from shardkit.errors import (
    IntegrityError,
    ManifestError,
    SampleNotFoundError,
    ShardIndexError,
    ShardReadError,
    UnsupportedVersionError,
)
from shardkit.read import ShardSet


@pytest.fixture
def small(tmp_path):
    return make_set(tmp_path / "set", [[100, 250, 40], [], [300, 7]], labels=("owl", "tit", "wren"))


def test_columns_span_the_whole_set(small):
    path, by_key = small
    ss = ShardSet.open(path)
    assert len(ss) == 5 and ss.shard_names == ["shard-00000.tar", "shard-00001.tar", "shard-00002.tar"]
    assert ss.keys == list(by_key)
    assert ss.shard_id.tolist() == [0, 0, 0, 2, 2] and ss.shard_id.dtype == np.int32
    assert ss.shard_ptr.tolist() == [0, 3, 3, 5]
    assert ss.frames.tolist() == [100, 250, 40, 300, 7] and ss.frames.dtype == np.int64
    assert np.array_equal(ss.payload_offset, ss.wav_offset + 44)
    assert np.array_equal(ss.sample_bytes, 44 + 2 * ss.frames)
    assert ss.vocabulary == ["owl", "tit", "wren"]
    assert [ss.vocabulary[x] for x in ss.label] == [by_key[k].label for k in ss.keys]
    assert ss.label.dtype == np.int32 and ss.sec_idx.dtype == np.int32 and ss.sec_ptr.dtype == np.int64
    for i, k in enumerate(ss.keys):
        sec = ss.sec_idx[ss.sec_ptr[i]:ss.sec_ptr[i + 1]].tolist()
        assert [ss.vocabulary[x] for x in sec] == by_key[k].secondary
    want = [int.from_bytes(hashlib.blake2b(k.encode()).digest()[:8], "little") for k in ss.keys]
    assert ss.key_hash.dtype == np.uint64 and ss.key_hash.tolist() == want
    assert (ss.sample_rate, ss.channels, ss.mode) == (16000, 1, "segments")
    assert ss.version_id.startswith("sk1-") and ss.root.is_local and ss.root.path == path


def test_reads_match_the_written_audio(small):
    path, by_key = small
    with ShardSet.open(path / "manifest.json") as ss:
        for i, k in enumerate(ss.keys):
            pcm = by_key[k].pcm
            assert ss.read_frames(i).dtype == np.int16
            assert np.array_equal(ss.read_frames(i), pcm)
            assert np.array_equal(ss.read_frames(i, 3, 9), pcm[3:9])
            assert np.array_equal(ss.read_frames(i, 5, 10**6), pcm[5:])
            wav = ss.read_data_member(i)
            assert wav == wav_bytes(pcm, 16000)
            audio, rate = sf.read(io.BytesIO(wav), dtype="int16")
            assert rate == 16000 and np.array_equal(audio, pcm)
            meta = ss.read_meta(i)
            assert meta["key"] == k and meta["primary_label"] == by_key[k].label
            assert meta["frames"] == len(pcm)
            assert ss.find(k) == i


def test_fixture_shards_are_plain_ustar(small):
    path, by_key = small
    with tarfile.open(path / "shard-00000.tar") as tf:
        members = tf.getmembers()
        assert [m.name for m in members] == [f"{k}.{e}" for k in list(by_key)[:3] for e in ("wav", "mp")]
        assert all(m.mtime == 0 and m.mode == 0o644 and not m.pax_headers for m in members)
        ss = ShardSet.open(path)
        assert [m.offset_data for m in members[::2]] == ss.wav_offset[:3].tolist()


def test_multichannel_pcm_has_a_channel_axis(tmp_path):
    path, by_key = make_set(tmp_path / "st", [[50, 60]], channels=2)
    ss = ShardSet.open(path)
    assert ss.channels == 2
    assert ss.read_frames(1).shape == (60, 2)
    assert np.array_equal(ss.read_frames(1, 10, 20), by_key[ss.keys[1]].pcm[10:20])


def test_missing_key_is_a_helpful_key_error(small):
    ss = ShardSet.open(small[0])
    with pytest.raises(SampleNotFoundError, match="keys look like") as err:
        ss.find("nope")
    assert isinstance(err.value, KeyError)
    with pytest.raises(SampleNotFoundError, match="no extension"):
        ss.find(ss.keys[0] + ".wav")


def test_unknown_manifest_version_is_refused(small):
    path = small[0]
    doc = json.loads((path / "manifest.json").read_text())
    doc["format_version"] = 99
    (path / "manifest.json").write_bytes(fmt.dumps_json(doc))
    with pytest.raises(UnsupportedVersionError, match=r"manifest\.json"):
        ShardSet.open(path)


def test_unknown_index_version_is_refused(small):
    path = small[0]
    idx = path / "shard-00002.index"
    doc = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(idx.read_bytes()))
    doc["format_version"] = 99
    idx.write_bytes(zstandard.ZstdCompressor().compress(msgpack.packb(doc)))
    with pytest.raises(UnsupportedVersionError, match=r"shard-00002\.index"):
        ShardSet.open(path)


def test_size_mismatch_is_an_integrity_error(small):
    path = small[0]
    with open(path / "shard-00002.tar", "ab") as fh:
        fh.write(b"\0" * 512)
    with pytest.raises(IntegrityError, match=r"shard-00002\.tar"):
        ShardSet.open(path)


def test_missing_shard_and_index(small):
    path = small[0]
    os.remove(path / "shard-00002.tar")
    with pytest.raises(ShardReadError, match=r"shard-00002\.tar"):
        ShardSet.open(path)
    os.remove(path / "shard-00000.index")
    with pytest.raises(ShardIndexError, match=r"shard-00000\.index"):
        ShardSet.open(path)


def test_no_manifest(tmp_path):
    with pytest.raises(ManifestError, match="no manifest"):
        ShardSet.open(tmp_path)


def test_index_from_another_pack_is_refused(tmp_path):
    a, _ = make_set(tmp_path / "a", [[10]], labels=("x",))
    b, _ = make_set(tmp_path / "b", [[10]], labels=("y",))
    os.replace(b / "shard-00000.index", a / "shard-00000.index")
    os.replace(b / "shard-00000.tar", a / "shard-00000.tar")
    with pytest.raises(ShardIndexError, match="vocabulary"):
        ShardSet.open(a)


def test_truncated_shard_while_reading_names_shard_and_key(small):
    path = small[0]
    ss = ShardSet.open(path)
    os.truncate(path / "shard-00002.tar", int(ss.wav_offset[3]) + 100)
    with pytest.raises(ShardReadError, match=r"shard-00002\.tar.*src2/rec0000-0000.*changed since the set was "
                       r"opened: it was rewritten"):
        ss.read_frames(3)


def test_pickles_and_reopens_files(small):
    path, by_key = small
    ss = ShardSet.open(path)
    ss.read_frames(0)  # opens a file descriptor
    assert ss.storage.open_files == 1
    copy = pickle.loads(pickle.dumps(ss))
    assert copy.storage.open_files == 0 and copy.keys == ss.keys  # descriptors do not travel
    assert np.array_equal(copy.read_frames(4), by_key[ss.keys[4]].pcm)
    copy.close()
    ss.close()


def test_empty_set(tmp_path):
    path = write_shard_set(tmp_path / "e", [])
    ss = ShardSet.open(path)
    assert len(ss) == 0 and ss.shard_ptr.tolist() == [0] and ss.sec_ptr.tolist() == [0]


def test_sample_without_label(tmp_path):
    path = write_shard_set(tmp_path / "n", [[Sample("a", np.zeros(5, np.int16)),
                                             Sample("b", np.ones(5, np.int16), "z")]])
    ss = ShardSet.open(path)
    assert ss.label.tolist() == [-1, 0] and ss.vocabulary == ["z"]
