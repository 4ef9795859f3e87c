"""Bounded-memory decoding gives the bytes of whole-file decoding: block reads + soxr's streaming
resampler equal the one-shot path bit for bit, and a streamed source (:class:`PcmStream`) sliced in
piece order equals the array :func:`decode_file` returns."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import soundfile as sf
import soxr
from audio_factory import make_file

import shardkit
from shardkit import PackOptions
from shardkit.errors import DecodeError
from shardkit.ingest import decode
from shardkit.ingest.decode import PcmStream, convert, decode_file, open_source, resampled_frames


@pytest.mark.parametrize(("rate_in", "rate_out"), [(48000, 32000), (44100, 32000), (16000, 32000), (22050, 48000)])
@pytest.mark.parametrize("channels", [1, 2])
def test_streaming_resampler_equals_one_shot(rate_in, rate_out, channels):
    rng = np.random.default_rng(rate_in + channels)
    x = (0.3 * rng.standard_normal((300_001, channels))).astype(np.float32)
    whole = convert(x, rate_in, rate_out, mono=False)
    conv = decode._Converter(rate_in, rate_out, channels, mono=False)
    parts = [conv.push(x[s: s + 7919]) for s in range(0, x.shape[0], 7919)] + [conv.flush()]
    assert np.array_equal(np.concatenate(parts), whole)
    assert whole.shape[0] == resampled_frames(x.shape[0], rate_in, rate_out)
    assert soxr.resample(x[:, :1], rate_in, rate_out).shape[0] == whole.shape[0]


@pytest.mark.parametrize("ext", [".ogg", ".flac", ".wav", ".mp3", ".opus"])
@pytest.mark.parametrize("channels", [1, 2])
def test_stream_slices_equal_whole_decode(tmp_path, ext, channels):
    p = make_file(tmp_path / f"a{ext}", 9.3, 48000, channels, seed=3)
    for mono in (True, False):
        whole = decode_file(p, sample_rate=32000, mono=mono)
        dec = open_source(p, sample_rate=32000, mono=mono, stream_above=0)
        assert isinstance(dec.pcm, PcmStream)
        assert dec.pcm.shape == whole.pcm.shape
        assert (dec.source_frames, dec.source_format) == (whole.source_frames, whole.source_format)
        # overlapping windows (segments with hop < segment), then a jump forward, then the tail
        plan = [(0, 80_000), (40_000, 80_000), (80_000, 80_000), (250_000, 20), (260_000, 10**6)]
        for start, length in plan:
            assert np.array_equal(dec.pcm[start: start + length], whole.pcm[start: start + length])
        with pytest.raises(ValueError, match="forward only"):
            dec.pcm[0:10]


def test_short_sources_are_decoded_whole(tmp_path):
    p = make_file(tmp_path / "a.flac", 1.0, 48000)
    assert isinstance(open_source(p, sample_rate=32000).pcm, np.ndarray)


def test_stream_repeat_for_stereo_packs(tmp_path):
    p = make_file(tmp_path / "a.wav", 3.0, 44100, 1)
    whole = decode_file(p, sample_rate=32000, mono=False).pcm.repeat(2, axis=1)
    stream = open_source(p, sample_rate=32000, mono=False, stream_above=0).pcm.repeat(2, axis=1)
    assert stream.shape == whole.shape
    assert np.array_equal(stream[0:50_000], whole[0:50_000])


def test_stream_nan_warning_once_and_replaced_before_resampling(tmp_path, caplog):
    x = (0.3 * np.sin(np.arange(200_000) / 10)).astype(np.float32)
    x[1000:1100] = np.nan
    x[150_000] = -np.inf
    sf.write(tmp_path / "nan.wav", x, 44100, subtype="FLOAT")
    whole = decode_file(tmp_path / "nan.wav", sample_rate=32000).pcm
    caplog.clear()
    dec = open_source(tmp_path / "nan.wav", sample_rate=32000, stream_above=0)
    assert caplog.text.count("101 non-finite samples") == 1
    assert np.array_equal(dec.pcm[0: whole.shape[0]], whole)


def test_stream_names_a_source_changed_after_open(tmp_path):
    p = make_file(tmp_path / "a.wav", 3.0, 44100)
    dec = open_source(p, sample_rate=32000, stream_above=0, name="x/a.wav")
    make_file(p, 2.0, 44100)
    with pytest.raises(DecodeError, match="changed while packing"):
        dec.pcm[0: 10**6]


def test_truncated_long_source_is_refused_before_streaming(tmp_path):
    p = make_file(tmp_path / "a.flac", 6.0, 48000)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match=r"truncated|unreadable"):
        open_source(p, sample_rate=32000, stream_above=0)


def _pack_hashes(out):
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(out.iterdir())
            if f.suffix in (".tar", ".index")}


@pytest.mark.parametrize("options", [
    PackOptions(mode="recordings", max_seconds=2.0, shard_size="256KB"),
    PackOptions(mode="segments", segment_seconds=1.5, hop_seconds=0.7, tail="pad", shard_size="256KB"),
    PackOptions(mode="segments", segment_seconds=1.0, tail="keep", channels=2, shard_size="256KB"),
])
def test_streamed_pack_gives_the_same_bytes(tmp_path, monkeypatch, options):
    src = tmp_path / "src"
    for n, (ext, ch) in enumerate([(".flac", 2), (".ogg", 1), (".wav", 1), (".mp3", 2)]):
        make_file(src / f"a{n}{ext}", 4.3 + n, 48000, ch, seed=n)
    shardkit.pack(src, tmp_path / "whole", options=options)
    monkeypatch.setattr(decode, "STREAM_ABOVE_BYTES", 0)
    shardkit.pack(src, tmp_path / "streamed", options=options)
    assert _pack_hashes(tmp_path / "whole") == _pack_hashes(tmp_path / "streamed")
