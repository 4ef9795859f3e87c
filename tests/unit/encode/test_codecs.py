"""Codec objects: the registry, configs that round trip, and geometry every reader relies on."""

from __future__ import annotations

import numpy as np
import pytest

from shardkit.encode import CODECS, MelConfig, MelU8, Wav16, codec_class, codec_ids, get_codec, wav16
from shardkit.errors import FormatError, UnknownCodecError, UsageError

CODEC_OBJECTS = [Wav16(16000, 1), Wav16(44100, 2), MelU8(16000, MelConfig.for_rate(16000, n_mels=32))]


def test_the_registry_knows_every_codec_by_its_id():
    assert codec_ids() == sorted(CODECS) and len(CODECS) >= 2
    for cid, cls in CODECS.items():
        assert cls.codec_id == cid and codec_class(cid) is cls
    with pytest.raises(UnknownCodecError, match=r"'flac24'.*upgrade shardkit"):
        codec_class("flac24")


@pytest.mark.parametrize("codec", CODEC_OBJECTS, ids=repr)
def test_index_and_manifest_maps_rebuild_the_same_codec(codec):
    assert get_codec(codec.config()) == codec
    assert get_codec(codec.audio_doc()) == codec


@pytest.mark.parametrize("codec", CODEC_OBJECTS, ids=repr)
def test_a_crop_of_frames_is_one_byte_range_of_the_member(codec):
    rng = np.random.default_rng(0)
    pcm = rng.integers(-2000, 2000, size=(4000, codec.channels)).astype(np.int16)
    enc = codec.encode(pcm)
    assert len(enc.data) == codec.header_bytes + enc.frames * codec.frame_bytes == codec.member_bytes(4000)
    assert enc.frames == codec.frames_for_samples(4000)
    whole = codec.payload(enc.data[codec.header_bytes:], enc.frames)
    a, b = 2, 6
    part = codec.payload(enc.data[codec.header_bytes + a * codec.frame_bytes:
                                  codec.header_bytes + b * codec.frame_bytes], b - a)
    if codec.lanes == 1 or isinstance(codec, Wav16):
        np.testing.assert_array_equal(part, whole[a:b])
    else:  # spectrograms come out (lanes, frames)
        np.testing.assert_array_equal(part, whole[:, a:b])
    assert codec.frames_for_seconds(0.25) == codec.frames_for_samples(round(0.25 * codec.sample_rate))


def test_wav16_member_is_a_standard_wav():
    pcm = np.arange(-50, 50, dtype=np.int16)[:, None]
    data = Wav16(16000).encode(pcm).data
    got, rate = wav16.decode(data)
    assert rate == 16000 and np.array_equal(got[:, 0], pcm[:, 0])


def test_mel_u8_batch_fields_and_pack_checks():
    codec = MelU8(16000, MelConfig.for_rate(16000, n_mels=32))
    cols = {"q_lo": np.array([-80.0, -70.0], np.float32), "q_hi": np.array([0.0, -5.0], np.float32)}
    np.testing.assert_array_equal(codec.batch_fields(cols, np.array([1]))["mel_range"], [[-70.0, -5.0]])
    assert codec.batch_field_specs() == {"mel_range": ((2,), np.float32)}
    with pytest.raises(UsageError, match="mono"):
        MelU8.for_pack(16000, 2, None)
    with pytest.raises(UsageError, match="mel-u8"):
        Wav16.for_pack(16000, 1, MelConfig.for_rate(16000))
    with pytest.raises(FormatError, match="not valid"):
        get_codec({"codec": "wav16", "sample_rate": 16000, "channels": 1, "sample_width": 3})


@pytest.mark.parametrize("codec", CODEC_OBJECTS, ids=repr)
@pytest.mark.parametrize("device", ["banana!", "", "cuda:x", "gpu 0"])
def test_a_device_that_is_no_device_name_is_refused(codec, device):
    with pytest.raises(UsageError, match="device"):
        codec.check_device(device)


@pytest.mark.parametrize("codec", CODEC_OBJECTS, ids=repr)
def test_frame_codecs_crop_by_byte_range_and_check_sizes(codec):
    """The geometry readers ask a frame codec for: the byte range of a crop, the frames in it, sizes that
    fit, frames from a member's size (reindex), and the whole member decoded."""
    pcm = np.random.default_rng(1).integers(-2000, 2000, size=(4000, codec.channels)).astype(np.int16)
    enc = codec.encode(pcm)
    offsets, nbytes = codec.crop_ranges(np.array([512, 4096]), np.array([len(enc.data)] * 2), np.array([2, 0]),
                                        np.array([4, 3]))
    assert offsets.tolist() == [512 + codec.header_bytes + 2 * codec.frame_bytes, 4096 + codec.header_bytes]
    assert nbytes.tolist() == [4 * codec.frame_bytes, 3 * codec.frame_bytes]
    whole = codec.decode(enc.data)
    assert whole.shape == (enc.frames, codec.lanes) and whole.dtype == codec.dtype
    start = codec.header_bytes + 2 * codec.frame_bytes
    np.testing.assert_array_equal(codec.crop(enc.data[start:start + 4 * codec.frame_bytes], 2, 4), whole[2:6])
    assert codec.frames_in_member(len(enc.data), {}) == enc.frames
    with pytest.raises(FormatError, match="do not fit"):
        codec.frames_in_member(len(enc.data) + 1, {})
    fits = codec.member_fits(np.array([len(enc.data), len(enc.data) + 1]), np.array([enc.frames, enc.frames]))
    assert fits.tolist() == [True, False] and str(codec.header_bytes) in codec.size_rule


def test_codecs_declare_their_pack_settings():
    from shardkit.encode import pack_options

    declared = pack_options()
    assert set(declared) == set(MelU8.pack_options) and declared["n_mels"][2] == ["mel-u8"]
    assert MelU8.pack_settings(16000, {}) == {}
    assert MelU8.pack_settings(16000, {"n_mels": 40}) == {"mel": MelConfig.for_rate(16000, n_mels=40)}
    assert Wav16.pack_settings(16000, {}) == {}
    with pytest.raises(UsageError, match="n_mels is not a setting of codec 'wav16'"):
        Wav16.pack_settings(16000, {"n_mels": 40})
    with pytest.raises(UsageError, match="are not settings of codec 'mel-u8'"):
        MelU8.pack_settings(16000, {"level": 5, "bits": 3})
