"""A whole-member codec for tests: int16 PCM compressed with zlib (``KEY.z16`` members).

It proves the codec seam (shardkit.encode.base): a codec whose frames are not at known byte offsets
is this one module — a :class:`~shardkit.encode.Codec` (here a :class:`~shardkit.encode.WaveformCodec`)
with ``encode``/``decode``, ``member_bytes`` as a bound and ``frames_in_member`` from the sample's
metadata — registered with
:func:`~shardkit.encode.register_codec`; packing, checking, reindexing and reading batches need nothing
else. A FLAC or Opus codec has the same shape. Tests register it for their own duration
(``registered`` in tests/integration/test_whole_member_codec.py); it is not part of shardkit.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from shardkit.encode import Encoded, MelConfig, WaveformCodec
from shardkit.errors import FormatError, UsageError

CODEC_ID = "zlib16"


@dataclass(frozen=True)
class Zlib16(WaveformCodec):
    """int16 PCM, ``channels`` interleaved values per frame, zlib-compressed (level 6) as one stream."""

    codec_id: ClassVar[str] = CODEC_ID
    ext: ClassVar[str] = "z16"
    dtype: ClassVar[np.dtype] = np.dtype("<i2")

    sample_rate: int
    channels: int = 1

    @classmethod
    def for_pack(cls, sample_rate: int, channels: int, mel: MelConfig | None) -> Zlib16:
        if mel is not None:
            raise UsageError(f"mel settings do not apply to codec {CODEC_ID!r}")
        return cls(int(sample_rate), int(channels))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Zlib16:
        return cls(int(config["sample_rate"]), int(config["channels"]))

    def config(self) -> dict[str, Any]:
        return {"codec_id": CODEC_ID, "sample_rate": self.sample_rate, "channels": self.channels, "sample_width": 2}

    def member_bytes(self, samples: int) -> int:
        raw = int(samples) * self.frame_bytes
        return raw + raw // 1000 + 64  # zlib's worst case (stored blocks) stays under this

    def frames_in_member(self, size: int, meta: Mapping[str, Any]) -> int:
        frames = meta.get("frames")
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 0 or size <= 0:
            raise FormatError(f"a {CODEC_ID} member's frames come from its metadata key 'frames', which is "
                              f"{frames!r}")
        return frames

    def encode(self, pcm: np.ndarray, *, device: str = "cpu") -> Encoded:
        return Encoded(zlib.compress(np.ascontiguousarray(pcm, dtype="<i2").tobytes(), 6), int(pcm.shape[0]))

    def decode(self, member: bytes | memoryview) -> np.ndarray:
        try:
            raw = zlib.decompress(member)
        except zlib.error as exc:
            raise FormatError(f"not a zlib stream ({exc})") from None
        if len(raw) % self.frame_bytes:
            raise FormatError(f"{len(raw)} bytes of PCM are not whole frames of {self.frame_bytes} bytes")
        return np.frombuffer(raw, dtype=self.dtype).reshape(-1, self.lanes)
