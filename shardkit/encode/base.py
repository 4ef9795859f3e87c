"""What every codec of a sample's data member provides (format §3): the :class:`Codec` interface.

A codec turns int16 audio into the bytes of one tar member (``KEY.<ext>``) and describes how a
reader finds frames in those bytes: a fixed-size header, then ``frames × frame_bytes`` payload bytes,
frame-major, so that frames ``[a, b)`` are the one contiguous byte range
``[header + a·frame_bytes, header + b·frame_bytes)`` of the member. Each frame holds ``lanes`` values
of ``dtype`` (wav16: one int16 per channel; mel-u8: one uint8 per mel band).

Codec objects are small frozen values: equal settings ⇔ equal objects. Each writes its settings into
every shard index (:meth:`Codec.config`, self-describing like numcodecs' ``get_config``) and into the
manifest (:meth:`Codec.audio_doc`), and is rebuilt from either by :func:`shardkit.encode.get_codec`.
Adding a codec = one module with a subclass + one line in :mod:`shardkit.encode.registry`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from shardkit.encode.mel_config import MelConfig
from shardkit.errors import UsageError

_DEVICE_RE = re.compile(r"[a-z]+(?::[0-9]+)?")


@dataclass(frozen=True)
class Encoded:
    """One encoded sample's data member and what the index and metadata record about it."""

    data: bytes                                  #: the member's bytes (header + payload)
    frames: int                                  #: stored frames (index column ``frames``)
    columns: tuple[tuple[str, Any], ...] = ()    #: the codec's own index columns, (name, value)
    meta: tuple[tuple[str, Any], ...] = ()       #: the codec's own metadata keys, (name, value)


class Codec(ABC):
    """The interface of a data-member codec (see the module docstring)."""

    #: the id written into indexes (``codec_id``) and manifests (``audio.codec``)
    codec_id: ClassVar[str]
    #: extension of the data member in the tar (``KEY.<ext>``)
    ext: ClassVar[str]
    #: bytes of the member's header, before the first frame
    header_bytes: ClassVar[int]
    #: numpy dtype of one stored value
    dtype: ClassVar[np.dtype]
    #: the index columns this codec adds to the common ones (format §4): name → numpy dtype of the
    #: column a reader builds from them, in index order
    index_columns: ClassVar[dict[str, str]] = {}
    #: the key of the payload in a :class:`~shardkit.ShardDataset` batch
    batch_key: ClassVar[str]

    sample_rate: int   #: Hz of the audio the member was made from
    channels: int      #: audio channels the member was made from

    # -- settings ---------------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def for_pack(cls, sample_rate: int, channels: int, mel: MelConfig | None) -> Codec:
        """The codec for a pack with these options; raises :class:`~shardkit.errors.UsageError` naming
        what to change when they do not fit this codec."""

    @classmethod
    @abstractmethod
    def from_config(cls, config: Mapping[str, Any]) -> Codec:
        """Rebuild from :meth:`config` or :meth:`audio_doc`; raises ``ValueError``/``KeyError``/``TypeError``
        on a malformed map (the caller names the file)."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """The codec map written into every shard index (key ``codec``)."""

    @abstractmethod
    def audio_doc(self) -> dict[str, Any]:
        """The manifest's ``audio`` map."""

    @property
    def mel(self) -> MelConfig | None:
        """The log-mel front end the stored frames come from; None for waveform codecs."""
        return None

    # -- geometry ---------------------------------------------------------------------------------

    @property
    @abstractmethod
    def lanes(self) -> int:
        """Values per stored frame (channels for waveforms, mel bands for spectrograms)."""

    @property
    def frame_bytes(self) -> int:
        """Bytes of one stored frame: ``lanes × dtype.itemsize``."""
        return self.lanes * np.dtype(self.dtype).itemsize

    @property
    @abstractmethod
    def seconds_per_frame(self) -> float:
        """Seconds of audio one stored frame stands for."""

    @abstractmethod
    def frames_for_samples(self, samples: int) -> int:
        """Stored frames for ``samples`` audio samples (per channel) at :attr:`sample_rate`."""

    def frames_for_seconds(self, seconds: float) -> int:
        """Stored frames for ``seconds`` of audio: ``frames_for_samples(round(seconds × sample_rate))``."""
        return self.frames_for_samples(round(float(seconds) * self.sample_rate))

    def member_bytes(self, samples: int) -> int:
        """Bytes of the data member for ``samples`` audio samples (header + payload)."""
        return self.header_bytes + self.frames_for_samples(samples) * self.frame_bytes

    # -- data -------------------------------------------------------------------------------------

    @abstractmethod
    def encode(self, pcm: np.ndarray, *, device: str = "cpu") -> Encoded:
        """int16 ``(frames, channels)`` audio at :attr:`sample_rate` → the data member."""

    def payload(self, data: bytes | memoryview, frames: int) -> np.ndarray:
        """Payload bytes of ``frames`` frames (no header) → a read-only array: ``(frames,)`` when
        :attr:`lanes` is 1, else ``(frames, lanes)`` (frame-major, as stored)."""
        values = np.frombuffer(data, dtype=self.dtype, count=frames * self.lanes)
        return values if self.lanes == 1 else values.reshape(frames, self.lanes)

    def batch_fields(self, columns: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
        """Per-row batch entries taken from this codec's index columns (``columns``: name → array over
        the shard set's samples) for the samples ``rows``; none by default."""
        return {}

    def batch_field_specs(self) -> dict[str, tuple[tuple[int, ...], type]]:
        """Shape (without the batch dimension) and dtype of each :meth:`batch_fields` entry."""
        return {}

    # -- runtime ----------------------------------------------------------------------------------

    def check_device(self, device: str) -> None:
        """Raise :class:`~shardkit.errors.UsageError` when ``encode(..., device=device)`` cannot run here
        (by default: when ``device`` does not even look like a torch device name)."""
        if not _DEVICE_RE.fullmatch(str(device)):
            raise UsageError(f"device {device!r} is not a device name; use 'cpu' or 'cuda' ('cuda:N')")

    def prepare_worker(self) -> None:
        """Called once in each decoding process before it encodes."""
        return None
