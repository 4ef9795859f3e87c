"""The codec seam with a codec whose members are read whole (tests/zlib16_codec.py, zlib-compressed
int16): pack, verify, reindex and DataLoader batches with random crops work through it, and give
exactly the frames a wav16 set of the same sources gives — nothing outside the codec's module knows
its members are compressed."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from zlib16_codec import Zlib16

import shardkit
from shardkit.encode import FrameCodec, Wav16, registry
from shardkit.errors import FormatError, ShardReadError

SEG = {"mode": "segments", "segment_seconds": 1.5, "tail": "keep"}


@pytest.fixture(scope="module")
def registered():
    """Zlib16 in the codec registry for this module's tests (DataLoader workers fork: they inherit it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "CODECS", dict(registry.CODECS))
        registry.register_codec(Zlib16)
        yield


def _pack(corpus, out, codec, **opts):
    src, csv = corpus
    options = shardkit.PackOptions(codec=codec, shard_size="300KB", **opts)
    r = shardkit.pack(src, out, metadata=csv, options=options, workers=2)
    assert r.complete and r.shards > 1
    return out


@pytest.fixture(scope="module")
def sets(registered, corpus, tmp_path_factory):
    """{mode: (zlib16 set, wav16 set)} of the same corpus: stereo recordings, mono segments."""
    root = tmp_path_factory.mktemp("zlib16")
    return {mode: (_pack(corpus, root / f"z-{mode}", "zlib16", **kw), _pack(corpus, root / f"w-{mode}", "wav16", **kw))
            for mode, kw in (("recordings", {"channels": 2}), ("segments", SEG))}


def test_the_codec_round_trips_and_declares_whole_members():
    codec = Zlib16(16000, 2)
    assert not isinstance(codec, FrameCodec) and isinstance(Wav16(16000), FrameCodec)
    pcm = np.random.default_rng(0).integers(-3000, 3000, size=(4000, 2)).astype(np.int16)
    enc = codec.encode(pcm)
    assert enc.frames == 4000 and len(enc.data) <= codec.member_bytes(4000)
    np.testing.assert_array_equal(codec.decode(enc.data), pcm)
    np.testing.assert_array_equal(codec.crop(enc.data, 3990, 50), pcm[3990:])       # clipped at the end
    assert codec.crop_ranges(1024, len(enc.data), 100, 10) == (1024, len(enc.data))  # always the whole member
    assert codec.frames_in_member(len(enc.data), {"frames": 4000}) == 4000
    assert codec.member_fits(np.array([len(enc.data), 0]), np.array([4000, 4000])).tolist() == [True, False]
    with pytest.raises(FormatError, match="zlib"):
        codec.decode(b"not zlib")
    with pytest.raises(FormatError, match="frames"):
        codec.frames_in_member(10, {})


def test_packed_sets_hold_the_same_frames_and_verify(sets):
    for z, w in sets.values():
        zs, ws = shardkit.ShardSet.open(z), shardkit.ShardSet.open(w)
        assert zs.codec == Zlib16(32000, ws.channels) and zs.keys == ws.keys
        np.testing.assert_array_equal(zs.frames, ws.frames)
        assert int(zs.sample_bytes.sum()) < int(ws.sample_bytes.sum())  # compressed
        for i in range(len(zs)):
            np.testing.assert_array_equal(zs.read_frames(i), ws.read_frames(i))
            np.testing.assert_array_equal(zs.read_frames(i, 100, 900), ws.read_frames(i, 100, 900))
        report = shardkit.verify(z)
        assert report.ok, report.problems


def test_reindex_rebuilds_byte_identical_indexes(sets):
    z, _ = sets["segments"]
    indexes = sorted(z.glob("*.index"))
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in indexes}
    indexes[0].unlink()
    result = shardkit.reindex(z, force=True)
    assert sorted(result.rebuilt) == sorted(before)
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(z.glob("*.index"))} == before


def _epochs(root, epochs=2, **kw):
    """Per epoch, the sorted (key, crop bytes, labels) of every valid row read through two DataLoader workers
    (sorted: the shuffle windows follow the members' byte sizes, which compression changes; the crops
    follow keys, frames, seed and epoch only)."""
    ds = shardkit.ShardDataset(root, batch_size=4, crop_seconds=1.0, shuffle=True, seed=5, **kw)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    out = []
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        rows = []
        for b in loader:
            assert b["audio"].dtype == torch.int16 and b["audio"].shape[-1] == 32000
            rows += [(k, b["audio"][j].numpy().tobytes(), b["labels"][j].numpy().tobytes())
                     for j, k in enumerate(b["keys"]) if b["valid"][j]]
        out.append(sorted(rows))
    return out


@pytest.mark.parametrize("mode", ["recordings", "segments"])
def test_dataloader_random_crops_equal_the_wav16_sets(sets, mode):
    """Random 1 s crops of samples up to 8 s (stereo recordings: (B, 2, T)), two epochs, two DataLoader
    workers, CRC checked: the same crops, bytes and labels as the frame codec reads by byte range."""
    z, w = sets[mode]
    crops = 2 if mode == "recordings" else 1
    got, want = _epochs(z, verify_crc=True, crops_per_recording=crops), _epochs(w, crops_per_recording=crops)
    assert got == want and len(got[0]) == crops * len(shardkit.ShardSet.open(z))
    assert got[0] != got[1]  # new crops each epoch


def _damage(root, i):
    ss = shardkit.ShardSet.open(root)
    path, key = root / ss.shard_names[int(ss.shard_id[i])], ss.keys[i]
    data = bytearray(path.read_bytes())
    data[int(ss.wav_offset[i]) + int(ss.sample_bytes[i]) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return key


def test_a_damaged_member_is_a_read_error_of_its_sample(sets, tmp_path):
    import shutil

    root = tmp_path / "z"
    shutil.copytree(sets["segments"][0], root)
    key = _damage(root, 3)
    for kw in ({"verify_crc": True}, {}):  # CRC mismatch, or (unchecked) a member that does not decode
        ds = shardkit.ShardDataset(root, batch_size=4, shuffle=False, **kw)
        with pytest.raises(ShardReadError, match=key):
            list(ds)
    ds = shardkit.ShardDataset(root, batch_size=4, shuffle=False, on_error="skip")
    rows = [(k, bool(v)) for b in ds for k, v in zip(b["keys"], b["valid"])]
    assert (key, False) in rows and ds.stats["skipped"] == 1
