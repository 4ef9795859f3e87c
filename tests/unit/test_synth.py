"""shardkit.synth: deterministic signals, the blocked writer, the Ogg serial fix, formats by extension."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from shardkit.errors import UsageError
from shardkit.synth import BLOCK_FRAMES, FORMATS, _fix_ogg_serial, chirp, synth_recording, write_audio


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _serials(path: Path) -> set[int]:
    """The stream serial number of every Ogg page of ``path``."""
    data, pos, out = path.read_bytes(), 0, set()
    while pos < len(data):
        assert data[pos:pos + 4] == b"OggS"
        n_segments = data[pos + 26]
        out.add(int.from_bytes(data[pos + 14:pos + 18], "little"))
        pos += 27 + n_segments + sum(data[pos + 27:pos + 27 + n_segments])
    return out


@pytest.mark.parametrize("ext", [".ogg", ".flac", ".wav"])
def test_same_seed_writes_the_same_bytes(tmp_path: Path, ext: str) -> None:
    audio = synth_recording(3.0, 32000, label_id=2, seed=5, channels=2, secondary_ids=(1,))
    assert np.array_equal(audio, synth_recording(3.0, 32000, label_id=2, seed=5, channels=2, secondary_ids=(1,)))
    serial = 1234 if ext == ".ogg" else None
    a = write_audio(tmp_path / "a" / f"x{ext}", audio, 32000, ogg_serial=serial)
    b = write_audio(tmp_path / "b" / f"x{ext}", audio, 32000, ogg_serial=serial)
    assert _sha(a) == _sha(b)
    other = write_audio(tmp_path / "c" / f"x{ext}", synth_recording(3.0, 32000, 2, seed=6, channels=2), 32000,
                        ogg_serial=serial)
    assert _sha(other) != _sha(a)
    assert not list(tmp_path.rglob("*.tmp"))


def test_chirp_is_deterministic_and_bounded() -> None:
    x = chirp(1.5, 22050, channels=2, seed=3)
    assert x.dtype == np.float32 and x.shape == (33075, 2)
    assert np.array_equal(x, chirp(1.5, 22050, channels=2, seed=3))
    assert not np.array_equal(x, chirp(1.5, 22050, channels=2, seed=4))
    assert np.abs(x).max() < 1.0


def test_blocked_vorbis_write_of_a_long_signal_decodes(tmp_path: Path) -> None:
    # many blocks (one huge write crashes libsndfile's Vorbis encoder), stereo, not a multiple of the block
    frames = 20 * BLOCK_FRAMES + 123
    audio = synth_recording(frames / 48000, 48000, label_id=0, seed=1, channels=2)
    assert audio.shape == (frames, 2)
    path = write_audio(tmp_path / "long.ogg", audio, 48000)
    info = sf.info(str(path))
    assert (info.format, info.subtype, info.samplerate, info.channels, info.frames) == ("OGG", "VORBIS", 48000, 2,
                                                                                       frames)
    decoded, rate = sf.read(str(path), dtype="float32", always_2d=True)
    assert rate == 48000 and decoded.shape == (frames, 2)
    # lossy, but the same signal: the decoded waveform follows the original closely
    err = np.sqrt(np.mean((decoded - audio) ** 2)) / np.sqrt(np.mean(audio**2))
    assert err < 0.3


def test_ogg_serial_fix_gives_a_file_libsndfile_reads(tmp_path: Path) -> None:
    audio = synth_recording(2.0, 32000, label_id=3, seed=0)
    fixed = write_audio(tmp_path / "fixed.ogg", audio, 32000, ogg_serial=2**32 + 77)   # taken modulo 2**32
    plain = write_audio(tmp_path / "plain.ogg", audio, 32000)
    assert _serials(fixed) == {77}
    a, _ = sf.read(str(fixed), dtype="float32")
    b, _ = sf.read(str(plain), dtype="float32")
    assert np.array_equal(a, b)                           # only the container changed, not the audio
    _fix_ogg_serial(plain, serial=77)
    assert _serials(plain) == {77} and _sha(plain) == _sha(fixed)   # the serial was the only difference
    (tmp_path / "junk.ogg").write_bytes(b"not an ogg file at all, no OggS pages here")
    with pytest.raises(ValueError, match="no Ogg page"):
        _fix_ogg_serial(tmp_path / "junk.ogg", serial=1)


@pytest.mark.parametrize("ext", sorted(FORMATS))
def test_write_audio_picks_the_format_by_extension(tmp_path: Path, ext: str) -> None:
    rate = 48000 if ext == ".opus" else 44100
    path = write_audio(tmp_path / "sub" / f"x{ext.upper() if ext == '.wav' else ext}", chirp(1.0, rate), rate)
    info = sf.info(str(path))
    assert (info.format, info.subtype) == FORMATS[ext]
    assert info.samplerate == rate and info.channels == 1


def test_write_audio_takes_a_named_format_and_mono_1d(tmp_path: Path) -> None:
    x = chirp(0.5, 16000)[:, 0]                            # (frames,): mono
    path = write_audio(tmp_path / "x.flac.part", x, 16000, "FLAC", "PCM_24")
    info = sf.info(str(path))
    assert (info.format, info.subtype, info.channels, info.frames) == ("FLAC", "PCM_24", 1, x.shape[0])
    wav = write_audio(tmp_path / "y.wav", chirp(0.5, 16000), 16000, subtype="FLOAT")
    assert sf.info(str(wav)).subtype == "FLOAT"


def test_write_audio_refuses_what_it_cannot_write(tmp_path: Path) -> None:
    audio = chirp(0.2, 16000)
    with pytest.raises(UsageError, match=r"'\.aiff'.*\.ogg"):
        write_audio(tmp_path / "x.aiff", audio, 16000)
    with pytest.raises(UsageError, match="extension ''"):
        write_audio(tmp_path / "noext", audio, 16000)
    with pytest.raises(UsageError, match="Ogg files only"):
        write_audio(tmp_path / "x.wav", audio, 16000, ogg_serial=1)
    with pytest.raises(UsageError, match="shape"):
        write_audio(tmp_path / "x.wav", np.zeros((2, 3, 4), np.float32), 16000)
    with pytest.raises((ValueError, RuntimeError)):               # libsndfile refuses the combination
        write_audio(tmp_path / "x.wav", audio, 16000, subtype="VORBIS")
    assert not list(tmp_path.iterdir())                    # nothing written, not even a temporary file
