"""What every codec of a sample's data member provides (format §3): the :class:`Codec` interface.

A codec turns int16 audio into the bytes of one tar member (``KEY.<ext>``) and back into *frames*:
``lanes`` values of ``dtype`` each (wav16: one int16 per channel; mel-u8: one uint8 per mel band),
frame-major. How a reader gets frames ``[a, b)`` out of a member is the codec's declared geometry,
split the way zarr splits ``ArrayBytesCodec`` from its partial-decode mixin:

- :class:`Codec` — a member is read whole and decoded (:meth:`Codec.decode`), then cropped
  (:meth:`Codec.crop`). This is what a compressing codec (FLAC, Opus, zlib) is: its frames are not
  at known byte offsets, so a random crop of a long recording costs a read and a decode of all of it.
- :class:`WaveformCodec` — the frame geometry of any codec that stores the waveform (one frame per
  audio sample, one lane per channel), mixed into the others.
- :class:`FrameCodec` — a fixed ``header_bytes`` header, then ``frames × frame_bytes`` payload
  bytes, so frames ``[a, b)`` are the one contiguous byte range
  ``[header + a·frame_bytes, header + b·frame_bytes)`` of the member: readers fetch just that range
  straight into the batch (no decode). wav16 and mel-u8 are frame codecs.

Readers never compute offsets themselves: they ask :meth:`Codec.crop_ranges` which bytes to fetch,
:meth:`Codec.crop` for the frames in them, :meth:`Codec.member_fits` whether an index's sizes fit, and
:meth:`Codec.frames_in_member` how many frames a member holds (reindex); they branch once on
``isinstance(codec, FrameCodec)`` where fetched bytes can go straight into a batch.

Codec objects are small frozen values: equal settings ⇔ equal objects. Each writes its settings into
every shard index (:meth:`Codec.config`, self-describing like numcodecs' ``get_config``) and into the
manifest (:meth:`Codec.audio_doc`), and is rebuilt from either by :func:`shardkit.encode.get_codec`.
Adding a codec = one module with a subclass + :func:`shardkit.encode.register_codec` (one line in
:mod:`shardkit.encode.registry` for the built-in ones).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from shardkit.encode.mel_config import MelConfig
from shardkit.errors import FormatError, UsageError

_DEVICE_RE = re.compile(r"[a-z]+(?::[0-9]+)?")


@dataclass(frozen=True)
class Encoded:
    """One encoded sample's data member and what the index and metadata record about it."""

    data: bytes                                  #: the member's bytes (header + payload)
    frames: int                                  #: stored frames (index column ``frames``)
    columns: tuple[tuple[str, Any], ...] = ()    #: the codec's own index columns, (name, value)
    meta: tuple[tuple[str, Any], ...] = ()       #: the codec's own metadata keys, (name, value)


class Codec(ABC):
    """The interface of a data-member codec whose members are read whole (see the module docstring);
    :class:`FrameCodec` is the one whose members are cropped by byte range."""

    #: the id written into indexes (``codec_id``) and manifests (``audio.codec``)
    codec_id: ClassVar[str]
    #: extension of the data member in the tar (``KEY.<ext>``)
    ext: ClassVar[str]
    #: numpy dtype of one stored value
    dtype: ClassVar[np.dtype]
    #: the index columns this codec adds to the common ones (format §4): name → numpy dtype of the
    #: column a reader builds from them, in index order
    index_columns: ClassVar[dict[str, str]] = {}
    #: the key of the frames in a :class:`~shardkit.ShardDataset` batch: ``"audio"`` for waveform
    #: frames, ``"mel"`` for log-mel frames (the device stage picks its front end by it)
    batch_key: ClassVar[str]
    #: settings a pack may give this codec beyond the common ones: name → (type, help); the CLI makes
    #: an option ``--name`` of each, :meth:`pack_settings` turns the values given into pack options
    pack_options: ClassVar[dict[str, tuple[type, str]]] = {}

    sample_rate: int   #: Hz of the audio the member was made from
    channels: int      #: audio channels the member was made from

    # -- settings ---------------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def for_pack(cls, sample_rate: int, channels: int, mel: MelConfig | None) -> Codec:
        """The codec for a pack with these options; raises :class:`~shardkit.errors.UsageError` naming
        what to change when they do not fit this codec."""

    @classmethod
    def pack_settings(cls, sample_rate: int, options: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments of :class:`~shardkit.PackOptions` for the :attr:`pack_options` given
        (name → value) at ``sample_rate`` Hz; none by default. Raises
        :class:`~shardkit.errors.UsageError` naming options this codec does not take."""
        unknown = sorted(set(options) - set(cls.pack_options))
        if unknown:
            raise UsageError(f"{', '.join(unknown)} {'is not a setting' if len(unknown) == 1 else 'are not settings'}"
                             f" of codec {cls.codec_id!r} (it takes {sorted(cls.pack_options) or 'none'}); "
                             "choose the codec they belong to (pack --format)")
        return {}

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
        """Bytes of one decoded frame (a batch row holds ``frames × frame_bytes``): ``lanes × dtype.itemsize``."""
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

    @abstractmethod
    def member_bytes(self, samples: int) -> int:
        """Bytes of the data member for ``samples`` audio samples: exact for a :class:`FrameCodec`, an
        upper bound for a compressing codec (a pack's budget estimate)."""

    def member_fits(self, sizes: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """bool (N,): whether each data member of ``sizes`` bytes (int64 (N,)) can hold ``frames``
        (int64 (N,)) frames; a whole-member codec only knows a member is not empty."""
        return (np.asarray(sizes) > 0) & (np.asarray(frames) >= 0)

    @property
    def size_rule(self) -> str:
        """What :meth:`member_fits` checks, for error messages."""
        return "a non-empty member"

    @abstractmethod
    def frames_in_member(self, size: int, meta: Mapping[str, Any]) -> int:
        """Stored frames of a data member of ``size`` bytes whose ``KEY.mp`` map is ``meta`` (reindex
        rebuilds the index's ``frames`` column with it); :class:`~shardkit.errors.FormatError` when
        they do not fit."""

    # -- data -------------------------------------------------------------------------------------

    @abstractmethod
    def encode(self, pcm: np.ndarray, *, device: str = "cpu") -> Encoded:
        """int16 ``(frames, channels)`` audio at :attr:`sample_rate` → the data member."""

    @abstractmethod
    def decode(self, member: bytes | memoryview) -> np.ndarray:
        """A whole data member → its frames, ``dtype`` ``(frames, lanes)`` frame-major;
        :class:`~shardkit.errors.FormatError` when the bytes are not a member of this codec."""

    def crop_ranges(self, member_offset: Any, member_bytes: Any, start: Any, count: Any) -> tuple[Any, Any]:
        """``(offset, nbytes)``: the bytes a reader fetches for frames ``[start, start + count)`` of the
        members at ``member_offset`` (``member_bytes`` long) — ints or int64 arrays (N,). A whole-member
        codec fetches the whole member."""
        return member_offset, member_bytes

    def crop(self, fetched: bytes | memoryview, start: int, count: int) -> np.ndarray:
        """Frames ``[start, start + count)`` (fewer past the end) out of the bytes :meth:`crop_ranges`
        said to fetch, ``dtype`` ``(frames, lanes)``: the member decoded, then sliced."""
        return self.decode(fetched)[start:start + count]

    def frames_view(self, values: np.ndarray) -> np.ndarray:
        """Frame-major ``(frames, lanes)`` values → the shape readers hand out
        (:meth:`ShardSet.read_frames <shardkit.read.ShardSet.read_frames>`): ``(frames,)`` for one lane,
        else ``(frames, lanes)``; spectrogram codecs override (mel-u8: ``(n_mels, frames)``)."""
        return values.reshape(-1) if self.lanes == 1 else values

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


class FrameCodec(Codec):
    """A codec whose member is a fixed ``header_bytes`` header, then ``frames × frame_bytes`` bytes of
    frames as stored (frame-major, ``dtype``): any frame range is one byte range of the member, which
    readers fetch straight into a batch row (zarr's partial-decode capability)."""

    #: bytes of the member's header, before the first frame
    header_bytes: ClassVar[int]

    def member_bytes(self, samples: int) -> int:
        """Bytes of the data member for ``samples`` audio samples (header + payload)."""
        return self.header_bytes + self.frames_for_samples(samples) * self.frame_bytes

    def member_fits(self, sizes: np.ndarray, frames: np.ndarray) -> np.ndarray:
        return np.asarray(sizes) == self.header_bytes + np.asarray(frames) * self.frame_bytes

    @property
    def size_rule(self) -> str:
        return f"{self.header_bytes} header bytes + {self.frame_bytes} bytes per frame"

    def frames_in_member(self, size: int, meta: Mapping[str, Any]) -> int:
        frames, rest = divmod(int(size) - self.header_bytes, self.frame_bytes)
        if rest or frames < 0:
            raise FormatError(f"{size} bytes do not fit the codec ({self.header_bytes} + frames × {self.frame_bytes})")
        return frames

    def crop_ranges(self, member_offset: Any, member_bytes: Any, start: Any, count: Any) -> tuple[Any, Any]:
        """Only the frames: ``member_offset + header_bytes + start × frame_bytes``, ``count × frame_bytes``."""
        return member_offset + self.header_bytes + start * self.frame_bytes, count * self.frame_bytes

    def crop(self, fetched: bytes | memoryview, start: int, count: int) -> np.ndarray:
        """The fetched bytes are the frames: a read-only ``(count, lanes)`` view of them."""
        return np.frombuffer(fetched, dtype=self.dtype, count=count * self.lanes).reshape(count, self.lanes)

    def decode(self, member: bytes | memoryview) -> np.ndarray:
        frames = self.frames_in_member(len(member), {})
        return self.crop(memoryview(member)[self.header_bytes:], 0, frames)

    def payload(self, data: bytes | memoryview, frames: int) -> np.ndarray:
        """Payload bytes of ``frames`` frames (no header) → a read-only array in :meth:`frames_view`'s
        shape: ``(frames,)`` when :attr:`lanes` is 1, else ``(frames, lanes)`` (frame-major, as stored)."""
        return self.frames_view(self.crop(data, 0, frames))


class WaveformCodec(Codec):
    """The geometry of a codec that stores the waveform itself: one frame per audio sample, one lane per
    channel, and the manifest's ``audio`` map of a PCM codec. Mixed in before :class:`FrameCodec` (wav16)
    or alone (a compressed waveform codec)."""

    batch_key: ClassVar[str] = "audio"

    def audio_doc(self) -> dict[str, Any]:
        return {"codec": self.codec_id, "sample_rate": self.sample_rate, "channels": self.channels,
                "sample_width": np.dtype(self.dtype).itemsize}

    @property
    def lanes(self) -> int:
        return self.channels

    @property
    def seconds_per_frame(self) -> float:
        return 1.0 / self.sample_rate

    def frames_for_samples(self, samples: int) -> int:
        return int(samples)
