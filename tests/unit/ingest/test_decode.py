import numpy as np
import pytest
import soundfile as sf
from audio_factory import make_file

from shardkit.errors import DecodeError
from shardkit.ingest.decode import decode_file, to_int16


def test_to_int16_rounding_and_clipping():
    x = np.array([[0.0], [1.0], [-1.0], [2.0], [0.5 / 32768], [1.5 / 32768], [np.nan], [-np.inf]], np.float32)
    assert to_int16(x)[:, 0].tolist() == [0, 32767, -32768, 32767, 0, 2, 0, -32768]


def test_16bit_wav_at_target_rate_is_exact(tmp_path):
    import soundfile as sf

    p = make_file(tmp_path / "a.wav", 1.0, 32000)
    ref, _ = sf.read(p, dtype="int16", always_2d=True)
    d = decode_file(p, sample_rate=32000)
    assert np.array_equal(d.pcm, ref)


@pytest.mark.parametrize("ext", [".ogg", ".flac", ".mp3", ".wav", ".opus"])
def test_truncated_files_are_named(tmp_path, ext):
    p = make_file(tmp_path / f"a{ext}", 4.0, 48000)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError) as err:
        decode_file(p, sample_rate=32000, name=f"x/a{ext}")
    assert err.value.file == f"x/a{ext}"
    assert err.value.reason.startswith(("truncated", "unreadable"))


def test_empty_and_non_audio(tmp_path):
    (tmp_path / "e.ogg").write_bytes(b"")
    (tmp_path / "t.ogg").write_text("not audio at all " * 20)
    with pytest.raises(DecodeError, match="empty"):
        decode_file(tmp_path / "e.ogg", sample_rate=32000)
    with pytest.raises(DecodeError, match="not audio"):
        decode_file(tmp_path / "t.ogg", sample_rate=32000)
    with pytest.raises(DecodeError, match="missing"):
        decode_file(tmp_path / "nope.ogg", sample_rate=32000)


def test_nan_and_inf_are_replaced_before_resampling(tmp_path, caplog):
    x = (0.3 * np.sin(np.arange(44100) / 10)).astype(np.float32)
    x[1000:1100] = np.nan
    x[5000] = np.inf
    sf.write(tmp_path / "nan.wav", x, 44100, subtype="FLOAT")
    clean = x.copy()
    clean[1000:1100] = 0.0
    clean[5000] = 1.0
    sf.write(tmp_path / "clean.wav", clean, 44100, subtype="FLOAT")
    got = decode_file(tmp_path / "nan.wav", sample_rate=32000).pcm
    assert np.array_equal(got, decode_file(tmp_path / "clean.wav", sample_rate=32000).pcm)
    assert "101 non-finite samples" in caplog.text


@pytest.mark.parametrize("rate", [1, 999])
def test_an_absurd_declared_rate_is_a_reject(tmp_path, rate):
    sf.write(tmp_path / "slow.wav", np.zeros(20000, np.int16), rate)
    with pytest.raises(DecodeError, match="absurd sample rate"):
        decode_file(tmp_path / "slow.wav", sample_rate=32000)
