"""Where a source's bytes become int16 PCM: decode (libsndfile via soundfile), downmix, resample
(soxr), quantise. Every failure becomes a :class:`DecodeError` naming the file and the reason.

Memory is bounded: decoding runs in blocks of :data:`BLOCK_FRAMES` source frames through soxr's
streaming resampler (the same bytes as the one-shot resampler), and :func:`open_source` streams a
long source (:class:`PcmStream`) instead of holding it (docs/reliability.md).

soundfile was chosen over torchcodec for pack: it decodes Ogg Vorbis at ~700–790× realtime per
core here with no FFmpeg, reads ogg/flac/mp3/opus/wav from its wheel, and its partial reads by
seek are ~8× cheaper (7 ms vs 56 ms per 5 s window), which the benchmarks reuse.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from shardkit.errors import DecodeError

#: soxr quality used for every resample (format §3.1).
RESAMPLE_QUALITY = "HQ"
#: Declared source properties accepted (anything else is a broken or hostile header, a reject)
MIN_SOURCE_RATE, MAX_SOURCE_RATE = 1000, 768_000
MAX_SOURCE_CHANNELS = 64
MAX_SOURCE_SECONDS = 24 * 3600
#: source frames decoded per block (float32: 64 Ki frames × channels × 4 bytes)
BLOCK_FRAMES = 1 << 16
#: :func:`open_source` streams a source whose int16 result would pass this many bytes (~9 min at
#: 32 kHz mono) instead of holding it whole
STREAM_ABOVE_BYTES = 32 << 20
#: an MP3 whose float32 decode fits this is read in one call, as before blocks (see :func:`_blocks`):
#: 44.1 kHz stereo ≈ 12 min, 48 kHz mono ≈ 23 min
MP3_WHOLE_READ_BYTES = 256 << 20

logger = logging.getLogger(__name__)
#: mp3 headers only estimate the length (VBR/Xing tables are often off by a fraction of a percent):
#: a stream counts as truncated when it decodes more than 1 % (and two MPEG frames) short of it.
_MP3_SLACK_FRAMES = 2 * 1152
_MP3_SLACK_FRACTION = 0.01


@dataclass(frozen=True)
class Decoded:
    """Decoded audio ready to segment: ``pcm`` is int16 ``(frames, channels)`` at ``sample_rate`` Hz."""

    pcm: np.ndarray
    sample_rate: int
    source_sample_rate: int
    source_channels: int
    source_frames: int
    source_format: str


def to_int16(x: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1) → int16: ``clip(rint(x · 32768), -32768, 32767)`` (round half to even).

    NaN becomes 0 and ±inf clips. Works in place on a float32 copy, in as few passes as numpy allows.
    """
    y = np.multiply(x, np.float32(32768.0), dtype=np.float32)
    if not np.isfinite(y).all():
        np.nan_to_num(y, copy=False, nan=0.0)
    np.rint(y, out=y)
    np.clip(y, -32768.0, 32767.0, out=y)
    return y.astype(np.int16)


def downmix(x: np.ndarray) -> np.ndarray:
    """float32 ``(frames, channels)`` → ``(frames, 1)``: the channels summed in order, then divided
    by their number (for stereo, exactly ``(left + right) / 2``)."""
    acc = x[:, 0].astype(np.float32, copy=True)
    for c in range(1, x.shape[1]):
        acc += x[:, c]
    acc /= np.float32(x.shape[1])
    return acc[:, None]


def convert(
    audio: np.ndarray, source_rate: int, sample_rate: int, *, mono: bool = True
) -> np.ndarray:
    """float32 ``(frames, channels)`` at ``source_rate`` Hz → int16 ``(frames', channels')`` at
    ``sample_rate`` Hz: :func:`downmix` when ``mono``, soxr HQ resampling, :func:`to_int16`."""
    x = audio
    if mono and x.shape[1] > 1:
        x = downmix(x)
    if source_rate != sample_rate and x.shape[0] > 0:
        x = soxr.resample(x, source_rate, sample_rate, quality=RESAMPLE_QUALITY)
        if x.ndim == 1:
            x = x[:, None]
    return to_int16(x)


def resampled_frames(frames: int, source_rate: int, sample_rate: int) -> int:
    """How many frames soxr makes of ``frames`` frames at ``source_rate`` Hz (python-soxr's
    ``int(n · out / in + 0.5)``; the streaming resampler flushed at the end makes the same number)."""
    return frames if source_rate == sample_rate else int(frames * sample_rate / source_rate + 0.5)


class _Converter:
    """:func:`convert` one block at a time: float32 ``(k, channels)`` blocks in source order → int16
    blocks. soxr's streaming resampler gives bit-identical output to the one-shot call for any block
    sizes (its FIFO processes fixed internal blocks), downmix and quantisation are per sample, so the
    concatenated blocks equal ``convert`` of the whole recording (tests/unit/ingest/test_decode_stream.py)."""

    def __init__(self, source_rate: int, sample_rate: int, channels: int, mono: bool) -> None:
        self.mono = mono and channels > 1
        self.out_channels = 1 if mono else channels
        self.stream = None if source_rate == sample_rate else soxr.ResampleStream(
            source_rate, sample_rate, self.out_channels, dtype="float32", quality=RESAMPLE_QUALITY)

    def push(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        """int16 ``(k', channels')`` for the next block (``last``: flush the resampler's tail)."""
        x = downmix(block) if self.mono and block.shape[0] else block
        if self.stream is not None:
            x = self.stream.resample_chunk(np.ascontiguousarray(x), last=last)
        return to_int16(x)

    def flush(self) -> np.ndarray:
        """The resampler's tail: int16 ``(k', channels')``, empty without resampling."""
        return self.push(np.zeros((0, self.out_channels), np.float32), last=True)


@dataclass(frozen=True)
class _Header:
    rate: int
    channels: int
    frames: int
    fmt: str
    extra: str


class _sf_errors:
    """Turn what libsndfile and the OS raise while opening or reading into a :class:`DecodeError`."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or isinstance(exc, DecodeError):
            return False
        if isinstance(exc, sf.LibsndfileError):
            msg = str(exc.error_string if hasattr(exc, "error_string") else exc).strip()
            if "not recognised" in msg.lower():
                raise DecodeError(self.label, f"not audio: libsndfile does not recognise the format ({msg})") from None
            raise DecodeError(self.label, f"unreadable: {msg} (truncated or corrupt file?)") from None
        if isinstance(exc, (RuntimeError, OSError, MemoryError, ValueError)):
            raise DecodeError(self.label, f"unreadable: {exc}") from None
        return False


def _open(path: str | os.PathLike[str], label: str, sample_rate: int) -> tuple[sf.SoundFile, _Header]:
    """Open ``path`` (sized, header checked, positioned at frame 0); call inside :class:`_sf_errors`."""
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise DecodeError(label, f"missing or unreadable: {exc.strerror}") from None
    if size == 0:
        raise DecodeError(label, "empty: the file has 0 bytes")
    f = sf.SoundFile(path)
    try:
        head = _Header(f.samplerate, f.channels, f.frames, f"{f.format}/{f.subtype}", f.extra_info)
        _check_header(label, head.rate, head.channels, head.frames, sample_rate)
        if f.seekable():
            f.seek(0)  # as soundfile.read does: mpg123's first frames differ by an ulp without it
    except BaseException:
        f.close()
        raise
    return f, head


def _blocks(f: sf.SoundFile, head: _Header) -> Iterator[np.ndarray]:
    """float32 ``(≤ BLOCK_FRAMES, channels)`` blocks to the end, exactly the frames that one
    ``f.read()`` returns (soundfile caps a seekable file's reads at its declared frame count).

    MP3 is the exception: libmpg123 rounds the last bit of some samples differently in frames it
    decodes in a later read call than the first, so an MP3 up to ``MP3_WHOLE_READ_BYTES`` of float32
    is read in one call (the bytes every earlier version packed) and handed on in blocks; a longer
    one is read in blocks (bounded memory; see docs/reliability.md)."""
    if head.fmt.startswith("MP3/") and head.frames * head.channels * 4 <= MP3_WHOLE_READ_BYTES:
        whole = f.read(dtype="float32", always_2d=True)
        for start in range(0, whole.shape[0], BLOCK_FRAMES):
            yield whole[start: start + BLOCK_FRAMES]
        return
    while True:
        block = f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
        if block.shape[0] == 0:
            return
        yield block


def decode_file(path: str | os.PathLike[str], *, sample_rate: int, mono: bool = True,
                name: str | None = None) -> Decoded:
    """Decode one audio file completely and convert it (see :func:`convert`), in blocks of
    ``BLOCK_FRAMES`` source frames: besides the int16 result only one block is held in float.

    ``name`` is how errors name the file (default: the path). Raises :class:`DecodeError` for a
    missing, empty, unreadable, non-audio, truncated or silent-length (0 frames) file.
    """
    return open_source(path, sample_rate=sample_rate, mono=mono, name=name, stream_above=-1)


def open_source(path: str | os.PathLike[str], *, sample_rate: int, mono: bool = True, name: str | None = None,
                stream_above: int | None = None) -> Decoded:
    """Like :func:`decode_file`, but a source whose int16 result would pass ``stream_above`` bytes
    (by its declared length; default ``STREAM_ABOVE_BYTES``; negative: never) comes back with ``pcm`` a
    :class:`PcmStream`: a first pass decodes it to count its frames and check it (truncation, NaN/inf
    warning, as :func:`decode_file`), the stream then decodes and converts it again block by block as
    its frames are taken, so memory stays bounded by the pieces in use, whatever the recording's
    length (the price: long sources are decoded twice). Same frames, same bytes."""
    label = name or str(path)
    limit = STREAM_ABOVE_BYTES if stream_above is None else stream_above
    parts: list[np.ndarray] = []
    decoded = nonfinite = 0
    with _sf_errors(label):
        f, head = _open(path, label, sample_rate)
        with f:
            out_channels = 1 if mono else head.channels
            whole = limit < 0 or resampled_frames(head.frames, head.rate, sample_rate) * out_channels * 2 <= limit
            conv = _Converter(head.rate, sample_rate, head.channels, mono) if whole else None
            for block in _blocks(f, head):
                decoded += block.shape[0]
                if conv is not None:
                    nonfinite += _sanitise(block)
                    parts.append(conv.push(block))
                else:  # first pass of a streamed source: count only
                    nonfinite += int(np.count_nonzero(~np.isfinite(block)))
            if conv is not None:
                parts.append(conv.flush())
    _check_decoded(path, label, head, decoded, nonfinite)
    if conv is None:
        stream = PcmStream(path, label, sample_rate, mono, resampled_frames(decoded, head.rate, sample_rate),
                           out_channels)
        return Decoded(stream, sample_rate, head.rate, head.channels, decoded, head.fmt)  # type: ignore[arg-type]
    pcm = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return Decoded(pcm, sample_rate, head.rate, head.channels, decoded, head.fmt)


class PcmStream:
    """The int16 ``(frames, channels)`` audio of one source, decoded and converted again block by
    block as it is sliced: ``stream[a:b]`` with ``a`` never below an earlier slice's start (the
    frames before it are dropped), like an array for :func:`shardkit.ingest.segment` pieces in order.
    ``shape``/``repeat`` mimic numpy for the pack's use. A source that no longer decodes to the
    frames counted at open raises :class:`DecodeError`."""

    def __init__(self, path: str | os.PathLike[str], label: str, sample_rate: int, mono: bool, frames: int,
                 channels: int, repeat: int = 1) -> None:
        self.path, self.label, self.sample_rate, self.mono = path, label, sample_rate, mono
        self.frames, self.channels, self.repeats = frames, channels, repeat
        self._gen: Iterator[np.ndarray] | None = None
        self._buf: list[np.ndarray] = []
        self._base = 0  #: frame number of the first buffered frame

    @property
    def shape(self) -> tuple[int, int]:
        return self.frames, self.channels * self.repeats

    def repeat(self, repeats: int, axis: int) -> PcmStream:
        """The same stream with each channel repeated ``repeats`` times (``axis`` must be 1)."""
        assert axis == 1
        return PcmStream(self.path, self.label, self.sample_rate, self.mono, self.frames, self.channels, repeats)

    def __getitem__(self, where: slice) -> np.ndarray:
        start, stop, _ = where.indices(self.frames)
        if start < self._base:
            raise ValueError(f"PcmStream reads forward only: frame {start} is before {self._base}")
        self._drop(start)
        end = self._base + sum(b.shape[0] for b in self._buf)
        while end < stop:
            block = next(self._source(), None)
            if block is None:
                break
            self._buf.append(block)
            end += block.shape[0]
        parts, pos = [], self._base
        for block in self._buf:
            a, b = max(start - pos, 0), min(stop - pos, block.shape[0])
            if a < b:
                parts.append(block[a:b])
            pos += block.shape[0]
        out = np.concatenate(parts) if parts else np.zeros((0, self.channels), np.int16)
        return out.repeat(self.repeats, axis=1) if self.repeats > 1 else out

    def _drop(self, start: int) -> None:
        while self._buf and self._base + self._buf[0].shape[0] <= start:
            self._base += self._buf.pop(0).shape[0]

    def _source(self) -> Iterator[np.ndarray]:
        if self._gen is None:
            self._gen = self._convert()
        return self._gen

    def _convert(self) -> Iterator[np.ndarray]:
        made = 0
        with _sf_errors(self.label):
            f, head = _open(self.path, self.label, self.sample_rate)
            with f:
                conv = _Converter(head.rate, self.sample_rate, head.channels, self.mono)
                for block in _blocks(f, head):
                    np.nan_to_num(block, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
                    out = conv.push(block)
                    made += out.shape[0]
                    yield out
                out = conv.flush()
                made += out.shape[0]
                yield out
        if made != self.frames:
            raise DecodeError(self.label, f"changed while packing: it decodes to {made} frames now, "
                                          f"{self.frames} when it was opened; re-run the pack")


def _check_decoded(path: str | os.PathLike[str], label: str, head: _Header, decoded: int, nonfinite: int) -> None:
    """After a full decode: refuse an empty or truncated file; warn about NaN/inf replaced."""
    if decoded == 0:
        raise DecodeError(label, "empty: the file holds no audio frames")
    reason = _truncation(path, head.fmt, head.frames, decoded, head.extra)
    if reason:
        raise DecodeError(label, f"truncated: {reason}")
    if nonfinite:
        logger.warning("%s: %d non-finite samples (NaN/inf) replaced before resampling", label, nonfinite)


def _check_header(label: str, rate: int, channels: int, frames: int, sample_rate: int) -> None:
    """Refuse declared properties no recording has (a hostile or broken header) before decoding."""
    if not MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE:
        raise DecodeError(label, f"absurd sample rate: the header declares {rate} Hz "
                                 f"(accepted: {MIN_SOURCE_RATE}..{MAX_SOURCE_RATE} Hz)")
    if not 1 <= channels <= MAX_SOURCE_CHANNELS:
        raise DecodeError(label, f"absurd channel count: the header declares {channels}")
    if frames > MAX_SOURCE_SECONDS * rate:
        raise DecodeError(label, f"too long: the header declares {frames / rate / 3600:.1f} h "
                                 f"(at most {MAX_SOURCE_SECONDS // 3600} h per file); split the recording")


def _sanitise(audio: np.ndarray) -> int:
    """NaN → 0 and ±inf → ±1 in place, *before* resampling (the filter would smear one NaN over
    hundreds of output samples); how many there were (the caller warns once per file)."""
    count = int(np.count_nonzero(~np.isfinite(audio)))
    if count:
        np.nan_to_num(audio, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
    return count


_DATA_SHOULD_BE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _truncation(path: str | os.PathLike[str], fmt: str, frames: int, decoded: int, extra: str) -> str | None:
    """Why the file looks cut short, or None. libsndfile decodes what is there without error, so
    each container is checked by its own evidence."""
    container = fmt.split("/")[0]
    if container in ("WAV", "WAVEX", "RF64", "W64", "AIFF"):
        m = _DATA_SHOULD_BE.search(extra)
        if m:
            return f"the header declares {m.group(1)} data bytes but the file holds {m.group(2)}"
    if container == "MP3":
        if decoded + max(_MP3_SLACK_FRAMES, _MP3_SLACK_FRACTION * frames) < frames:
            return f"the stream header announces {frames} frames but only {decoded} decode"
        return None
    if container == "OGG":
        return _ogg_truncation(path)
    if decoded < frames:
        return f"the header announces {frames} frames but only {decoded} decode"
    return None


def _ogg_truncation(path: str | os.PathLike[str]) -> str | None:
    """An Ogg stream must end with a complete page flagged end-of-stream."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        fh.seek(max(0, size - 70_000))
        tail = fh.read()
    pos = tail.rfind(b"OggS")
    if pos < 0 or len(tail) - pos < 27:
        return "no complete Ogg page at the end of the file"
    header_type = tail[pos + 5]
    nseg = tail[pos + 26]
    if len(tail) - pos < 27 + nseg:
        return "the last Ogg page is cut off"
    body = sum(struct.unpack_from(f"{nseg}B", tail, pos + 27))
    if pos + 27 + nseg + body > len(tail):
        return "the last Ogg page is cut off"
    if not header_type & 0x04:
        return "the Ogg stream has no end-of-stream page"
    return None
