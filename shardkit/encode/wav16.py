"""The ``wav16`` codec: canonical 44-byte RIFF/WAVE header + int16 little-endian PCM (format §3.1).

:class:`Wav16` is the codec object (a :class:`shardkit.encode.FrameCodec`); the functions below are the
byte-level pieces it uses, public for tools that read or write members on their own.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from shardkit.encode.base import Encoded, FrameCodec, WaveformCodec
from shardkit.encode.mel_config import MelConfig
from shardkit.errors import FormatError, UsageError

CODEC_ID = "wav16"
EXT = "wav"
WAV_HEADER_BYTES = 44
_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")


def codec_config(sample_rate: int, channels: int) -> dict[str, Any]:
    """The self-describing codec config written into every shard index."""
    return {
        "codec_id": CODEC_ID,
        "sample_rate": int(sample_rate),
        "channels": int(channels),
        "sample_width": 2,
        "header_bytes": WAV_HEADER_BYTES,
    }


def wav_header(frames: int, sample_rate: int, channels: int) -> bytes:
    """The 44-byte header for ``frames`` frames of int16 PCM at ``sample_rate`` Hz."""
    data_bytes = frames * channels * 2
    if data_bytes + 36 > 0xFFFFFFFF:
        raise FormatError(f"a WAV member cannot hold {frames} frames (4 GB limit); lower --max-seconds")
    return _HEADER.pack(
        b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, channels, sample_rate,
        sample_rate * channels * 2, channels * 2, 16, b"data", data_bytes,
    )


def encode(pcm: np.ndarray, sample_rate: int) -> bytes:
    """int16 PCM ``(frames,)`` or ``(frames, channels)`` → WAV member bytes."""
    if pcm.dtype != np.int16:
        raise TypeError(f"wav16 encodes int16 PCM, got {pcm.dtype}")
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    body = np.ascontiguousarray(pcm, dtype="<i2")
    return b"".join((wav_header(pcm.shape[0], sample_rate, channels), body))  # one copy of the PCM, not two


def parse_header(header: bytes) -> tuple[int, int, int]:
    """Check a canonical header; return ``(frames, sample_rate, channels)``."""
    if len(header) < WAV_HEADER_BYTES:
        raise FormatError(f"WAV member is {len(header)} bytes, shorter than its 44-byte header")
    riff, _size, wave, fmt, fmt_len, tag, channels, rate, _brate, align, bits, data, nbytes = _HEADER.unpack(
        header[:WAV_HEADER_BYTES]
    )
    if (riff, wave, fmt, data) != (b"RIFF", b"WAVE", b"fmt ", b"data") or fmt_len != 16 or tag != 1:
        raise FormatError("not a canonical 44-byte PCM WAV header")
    if bits != 16 or align != channels * 2 or channels < 1:
        raise FormatError(f"WAV header says {bits}-bit, {channels} channels; wav16 needs 16-bit PCM")
    return nbytes // align, rate, channels


def decode(data: bytes | memoryview) -> tuple[np.ndarray, int]:
    """WAV member bytes → ``(int16 array (frames, channels), sample_rate)`` (zero-copy view)."""
    frames, rate, channels = parse_header(bytes(data[:WAV_HEADER_BYTES]))
    pcm = np.frombuffer(data, dtype="<i2", count=frames * channels, offset=WAV_HEADER_BYTES)
    return pcm.reshape(frames, channels), rate


@dataclass(frozen=True)
class Wav16(WaveformCodec, FrameCodec):
    """int16 PCM, ``channels`` interleaved values per frame, in a standard ``.wav`` member."""

    codec_id: ClassVar[str] = CODEC_ID
    ext: ClassVar[str] = EXT
    header_bytes: ClassVar[int] = WAV_HEADER_BYTES
    dtype: ClassVar[np.dtype] = np.dtype("<i2")

    sample_rate: int
    channels: int = 1

    @classmethod
    def for_pack(cls, sample_rate: int, channels: int, mel: MelConfig | None) -> Wav16:
        if mel is not None:
            raise UsageError("mel settings only apply to codec 'mel-u8' (pack --format mel-u8)")
        return cls(int(sample_rate), int(channels))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Wav16:
        header = int(config.get("header_bytes", WAV_HEADER_BYTES))
        if int(config.get("sample_width", 2)) != 2 or header != WAV_HEADER_BYTES:
            raise ValueError(f"{CODEC_ID} stores 2-byte samples after a 44-byte header, the map says {dict(config)}")
        channels = int(config["channels"])
        if channels < 1:
            raise ValueError(f"channels must be positive, got {channels}")
        return cls(int(config["sample_rate"]), channels)

    def config(self) -> dict[str, Any]:
        return codec_config(self.sample_rate, self.channels)

    def encode(self, pcm: np.ndarray, *, device: str = "cpu") -> Encoded:
        """int16 ``(frames, channels)`` → a ``.wav`` member of ``frames`` frames."""
        return Encoded(encode(pcm if pcm.shape[1] > 1 else pcm[:, 0], self.sample_rate), int(pcm.shape[0]))
