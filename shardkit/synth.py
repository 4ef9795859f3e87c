"""Synthetic audio for the demo, the benchmarks and the tests: bird-like recordings and one audio writer.

* :func:`synth_recording` — one synthetic "bird" recording: a per-label call pattern over background noise,
  float32 ``(frames, channels)``, a pure function of its arguments.
* :func:`chirp` — a simpler signal (a rising chirp over white noise) for tests that need any audio at all.
* :func:`write_audio` — encode ``(frames, channels)`` float audio to Ogg Vorbis/Opus, FLAC, MP3 or WAV with
  libsndfile (format from the extension unless named), in blocks of :data:`BLOCK_FRAMES` frames, written under a
  temporary name and renamed; ``ogg_serial=`` makes Ogg files byte-identical from run to run.

This module needs numpy and soundfile only (no torch); nothing here is recorded audio.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from shardkit.errors import UsageError

#: Frames per ``SoundFile.write`` call. libsndfile's Vorbis encoder crashes on one huge write, so every
#: file is written in blocks. The block size shapes the Vorbis stream (the encoder sees the data in these
#: steps): changing it changes the bytes and, slightly, the decoded samples of every Ogg Vorbis file written.
BLOCK_FRAMES = 32768

#: File extension → (libsndfile format, subtype) that :func:`write_audio` uses when it is not told.
FORMATS = {
    ".ogg": ("OGG", "VORBIS"),
    ".opus": ("OGG", "OPUS"),
    ".flac": ("FLAC", "PCM_16"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".wav": ("WAV", "PCM_16"),
}


# ---------------------------------------------------------------------------------------------
# bird-like recordings


@dataclass(frozen=True)
class _Species:
    """The call pattern of one label: frequencies in Hz, durations in seconds."""

    kind: str               # "whistle" (down-sweep), "chip" (up-sweep), "trill" (fast FM), "caw" (harmonic)
    f0: float               # base frequency of a note
    sweep: float            # frequency change over a note (or FM depth for trills)
    note_s: float           # note duration
    gap_s: float            # silence between notes of a phrase
    notes: int              # notes per phrase
    phrase_every_s: float   # mean time between phrase starts
    trill_hz: float         # FM rate for trills
    harmonics: tuple[float, ...]  # amplitudes of harmonics 1, 2, ...


def _species(label_id: int) -> _Species:
    """The call pattern of ``label_id``: its kind cycles caw, whistle, trill, chip; the rest is drawn from a
    generator seeded with the label alone, so a label sounds the same in every recording."""
    rng = np.random.default_rng([0x5EED, label_id])
    kind = ("caw", "whistle", "trill", "chip")[label_id % 4]
    if kind == "caw":
        f0 = rng.uniform(550, 900)
        return _Species(kind, f0, -0.15 * f0, rng.uniform(0.25, 0.4), rng.uniform(0.15, 0.3),
                        int(rng.integers(2, 5)), rng.uniform(1.8, 3.0), 0.0,
                        (1.0, 0.7, 0.5, 0.35, 0.25, 0.15))
    f0 = rng.uniform(2000, 5200)
    sweep = rng.uniform(0.2, 0.45) * f0
    if kind == "whistle":
        return _Species(kind, f0 + sweep, -sweep, rng.uniform(0.12, 0.3), rng.uniform(0.05, 0.15),
                        int(rng.integers(1, 4)), rng.uniform(1.0, 2.2), 0.0, (1.0, 0.15))
    if kind == "trill":
        return _Species(kind, f0, rng.uniform(0.05, 0.15) * f0, rng.uniform(0.4, 0.9), rng.uniform(0.2, 0.4),
                        int(rng.integers(1, 3)), rng.uniform(1.5, 3.0), rng.uniform(18, 40), (1.0, 0.2))
    return _Species(kind, f0, sweep, rng.uniform(0.03, 0.07), rng.uniform(0.03, 0.08),
                    int(rng.integers(3, 9)), rng.uniform(1.0, 2.5), 0.0, (1.0, 0.3, 0.1))


def _calls(frames: int, sample_rate: int, species: _Species, rng: np.random.Generator) -> np.ndarray:
    """float64 (frames,): phrases of notes of ``species`` at random times, peak about 1."""
    freq = np.zeros(frames)
    env = np.zeros(frames)
    jitter = rng.uniform(0.95, 1.05)              # this individual's pitch
    t = rng.uniform(0.0, min(1.0, species.phrase_every_s))
    seconds = frames / sample_rate
    while t < seconds:
        if rng.random() > 0.15:                   # now and then a phrase is skipped
            loud = rng.uniform(0.35, 1.0)
            start = t
            for _ in range(species.notes):
                a = int(start * sample_rate)
                n = int(species.note_s * rng.uniform(0.85, 1.15) * sample_rate)
                b = min(a + n, frames)
                if b - a < 8:
                    break
                u = np.arange(b - a) / n          # 0 → 1 over the note
                if species.kind == "trill":
                    f = species.f0 + species.sweep * np.sin(2 * np.pi * species.trill_hz * u * species.note_s)
                else:
                    f = species.f0 + species.sweep * u
                freq[a:b] = f * jitter
                env[a:b] = loud * np.sin(np.pi * u) ** 2
                start += species.note_s + species.gap_s * rng.uniform(0.8, 1.2)
        t += species.phrase_every_s * rng.uniform(0.6, 1.6)
    out = np.zeros(frames)
    sounding = np.flatnonzero(env)                # sines only where a note sounds (~10-30% of the time)
    if sounding.size:
        f = freq[sounding]
        phase = (2 * np.pi / sample_rate) * np.cumsum(f)
        tone = np.zeros(sounding.size)
        for k, amp in enumerate(species.harmonics, start=1):
            keep = k * f < 0.45 * sample_rate     # no aliasing at 22050 Hz
            tone[keep] += amp * np.sin(k * phase[keep])
        out[sounding] = tone * env[sounding] / sum(species.harmonics)
    return out


def synth_recording(
    seconds: float,
    sample_rate: int,
    label_id: int,
    seed: int,
    channels: int = 1,
    *,
    secondary_ids: Sequence[int] = (),
) -> np.ndarray:
    """A synthetic bird recording: the call pattern of ``label_id`` over low-level background noise.

    Each label has its own pattern (harmonic "caws", down-sweeping whistles, trills or rapid
    up-sweeping chips, with label-specific frequencies in 0.5–8 kHz, note lengths and phrase rates);
    ``secondary_ids`` add quieter calls of other labels. Everything is a function of the arguments.

    Args:
        seconds: duration in seconds; the result has ``round(seconds * sample_rate)`` frames.
        sample_rate: Hz.
        label_id: which call pattern (any int ≥ 0).
        seed: randomness of timing, loudness and noise.
        channels: 1 or 2; stereo channels differ in gain, delay and noise.
        secondary_ids: labels heard in the background.

    Returns:
        float32 ``(frames, channels)``, clipped to ±0.95 (typical peaks 0.2–0.6).
    """
    if seconds <= 0 or sample_rate <= 0 or channels not in (1, 2) or label_id < 0:
        raise UsageError(
            f"synth_recording needs seconds > 0, sample_rate > 0, channels 1 or 2 and label_id >= 0; "
            f"got {seconds!r}, {sample_rate!r}, {channels!r}, {label_id!r}"
        )
    frames = int(round(seconds * sample_rate))
    rng = np.random.default_rng([int(seed), int(label_id), int(sample_rate)])
    calls = _calls(frames, sample_rate, _species(label_id), rng)
    for other in secondary_ids:
        calls += rng.uniform(0.2, 0.45) * _calls(frames, sample_rate, _species(int(other)), rng)
    gain = rng.uniform(0.3, 0.6)
    noise_level = rng.uniform(0.004, 0.02)
    noise = noise_level * _noise(frames, sample_rate, rng)
    out = np.empty((frames, channels), dtype=np.float32)
    out[:, 0] = gain * calls + noise
    if channels == 2:                             # the second microphone: a little later and softer
        delay = int(rng.integers(1, 24))
        later = np.concatenate([np.zeros(delay), calls[: frames - delay]])[:frames]
        out[:, 1] = gain * rng.uniform(0.6, 0.9) * later + noise[::-1]  # reversed: uncorrelated noise
    np.clip(out, -0.95, 0.95, out=out)
    return out


def _noise(frames: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """float32 (frames,): soft background noise, rms about 1, louder at low frequencies and slowly
    swelling like wind: white noise through a blend of moving averages (one cumulative sum)."""
    longest = 13
    white = rng.standard_normal(frames + longest, dtype=np.float32)
    c = np.concatenate([[0.0], np.cumsum(white, dtype=np.float64)])
    out = np.zeros(frames)
    for n in (2, 5, 13):                          # their notches differ, so the blend has none
        out += (c[longest + 1 :] - c[longest + 1 - n : -n]) / n
    out *= 1.0 / np.std(out[: min(frames, 65536)])
    step = 1024                                   # the swell is slow: compute it per 1024 samples
    coarse = np.arange(0, frames + step, step) / sample_rate
    swell = 1.0 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * coarse + rng.uniform(0, 2 * np.pi))
    swell = np.repeat(swell, step)[:frames]
    return (out * swell).astype(np.float32)


def chirp(seconds: float, sample_rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A plain test signal: a rising chirp with a slow tremolo over white noise, in [-0.8, 0.8].

    The chirp starts at ``600 + 200 * (seed % 7)`` Hz and rises by 600 Hz per second; channel ``c`` has
    the chirp at ``1 - 0.3 c`` of its level and its own noise. Use :func:`synth_recording` where the signal
    should look like a field recording; this one is for tests that need any decodable audio, fast.

    Args:
        seconds: duration in seconds; the result has ``round(seconds * sample_rate)`` frames.
        sample_rate: Hz.
        channels: number of channels (any count ≥ 1).
        seed: the noise and the start frequency.

    Returns:
        float32 ``(frames, channels)``.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    base = 600 + 200 * (seed % 7)
    x = 0.35 * np.sin(2 * np.pi * (base * t + 300 * t * t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t))
    out = np.empty((n, channels), np.float32)
    for c in range(channels):
        out[:, c] = x * (1.0 - 0.3 * c) + 0.05 * rng.standard_normal(n)
    return out


# ---------------------------------------------------------------------------------------------
# writing


def write_audio(
    path: str | os.PathLike[str],
    audio: np.ndarray,
    sample_rate: int,
    fmt: str | None = None,
    subtype: str | None = None,
    *,
    ogg_serial: int | None = None,
) -> Path:
    """Encode ``audio`` to ``path`` with libsndfile, in blocks of :data:`BLOCK_FRAMES` frames.

    The file is written as ``<path>.tmp`` and renamed, so ``path`` is either absent or whole; the parent
    folders are created. libsndfile gives every Ogg stream a random serial number, so two runs write
    different bytes; ``ogg_serial`` rewrites it (and the page checksums) to make Ogg files byte-identical.

    Args:
        path: the file to write; its extension (a key of :data:`FORMATS`) picks the format and subtype
            unless ``fmt`` is given.
        audio: float ``(frames, channels)`` or ``(frames,)`` (mono), in [-1, 1].
        sample_rate: Hz.
        fmt: libsndfile major format (``"OGG"``, ``"FLAC"``, ``"MP3"``, ``"WAV"``, ...); ``None`` = from
            the extension.
        subtype: libsndfile subtype (``"VORBIS"``, ``"PCM_16"``, ``"PCM_24"``, ...); ``None`` = the one
            :data:`FORMATS` names for the extension, or libsndfile's default for ``fmt``.
        ogg_serial: for Ogg files, the stream serial number to write (taken modulo 2**32).

    Returns:
        ``path``, as a :class:`~pathlib.Path`.

    Raises:
        UsageError: the extension is not one of :data:`FORMATS` and no ``fmt`` is given, ``audio`` is not
            1-D or 2-D, or ``ogg_serial`` is given for a format that is not Ogg.
    """
    path = Path(path)
    fmt, subtype = _resolve_format(path, fmt, subtype)
    if ogg_serial is not None and fmt != "OGG":
        raise UsageError(f"{path}: ogg_serial={ogg_serial} applies to Ogg files only, not {fmt}")
    data = np.asarray(audio)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2:
        raise UsageError(f"{path}: audio must be (frames, channels) or (frames,), got shape {data.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with sf.SoundFile(tmp, "w", samplerate=sample_rate, channels=data.shape[1], format=fmt,
                          subtype=subtype) as out:
            for start in range(0, data.shape[0], BLOCK_FRAMES):
                out.write(data[start : start + BLOCK_FRAMES])
        if ogg_serial is not None:
            _fix_ogg_serial(tmp, serial=ogg_serial)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def _resolve_format(path: Path, fmt: str | None, subtype: str | None) -> tuple[str, str | None]:
    """(format, subtype) for :func:`write_audio`: as given, else from the extension of ``path``."""
    if fmt is not None:
        return fmt, subtype
    try:
        ext_fmt, ext_subtype = FORMATS[path.suffix.lower()]
    except KeyError:
        raise UsageError(
            f"{path}: cannot tell the audio format from the extension {path.suffix!r}; use one of "
            f"{', '.join(FORMATS)} or pass fmt= (a libsndfile format such as 'WAV')"
        ) from None
    return ext_fmt, subtype if subtype is not None else ext_subtype


# Ogg pages carry a CRC-32 with polynomial 0x04C11DB7, MSB first, init 0, no final xor: zlib's
# (reflected) CRC-32 over bit-reversed bytes, bit-reversed back, with zlib's init/xor undone.
_REVERSE_BITS = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _ogg_crc(page: bytes) -> int:
    reflected = zlib.crc32(page.translate(_REVERSE_BITS), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


def _fix_ogg_serial(path: Path, serial: int) -> None:
    """Rewrite the (random) stream serial number of every Ogg page to ``serial``; fix the CRCs."""
    data = bytearray(path.read_bytes())
    pos = 0
    while pos < len(data):
        if data[pos : pos + 4] != b"OggS" or pos + 27 > len(data):
            raise ValueError(f"{path}: no Ogg page at byte {pos}")
        n_segments = data[pos + 26]
        size = 27 + n_segments + sum(data[pos + 27 : pos + 27 + n_segments])
        data[pos + 14 : pos + 18] = (serial & 0xFFFFFFFF).to_bytes(4, "little")
        data[pos + 22 : pos + 26] = b"\0\0\0\0"
        data[pos + 22 : pos + 26] = _ogg_crc(bytes(data[pos : pos + size])).to_bytes(4, "little")
        pos += size
    path.write_bytes(bytes(data))


__all__ = ["BLOCK_FRAMES", "FORMATS", "chirp", "synth_recording", "write_audio"]
