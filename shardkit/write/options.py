"""What shapes the bytes of a shard set: :class:`PackOptions`, validated before any work starts, and
the fingerprint of a pack's inputs (options + sources) that resume and conflict checks compare."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Literal

from shardkit.encode.base import Codec
from shardkit.encode.mel_config import MelConfig
from shardkit.encode.registry import DEFAULT_CODEC, codec_class, codec_ids
from shardkit.errors import UnknownCodecError, UsageError
from shardkit.ingest.segment import Piece, Tail, plan_chunks, plan_segments
from shardkit.ingest.sources import Order, Reject, SourceItem
from shardkit.units import parse_size

Mode = Literal["recordings", "segments"]

#: the shortest segment, hop or chunk a pack makes, seconds (1e-9 s rounded to 0 frames and meant no cut)
MIN_SECONDS = 0.01


@dataclass(frozen=True)
class PackOptions:
    """What shapes the bytes of a shard set. Sizes accept ``"1GB"``-style strings.

    - ``sample_rate``: Hz of the stored audio.
    - ``mode``: ``"recordings"`` (whole recordings, cut into chunks of at most ``max_seconds``, for
      random crops at read time) or ``"segments"`` (windows of ``segment_seconds`` every
      ``hop_seconds``, the last partial window per ``tail``: pad / keep / drop).
    - ``channels``: 1 downmixes by the mean; 2 keeps stereo (mono sources are duplicated, sources
      with other channel counts are rejected).
    - ``shard_size``: a shard rolls before a sample would take it past this many bytes.
    - ``order``: ``"shuffled"`` (by a keyed hash of the path: every shard mixes labels) or ``"sorted"``.
    - ``codec``: the id of a codec of :mod:`shardkit.encode` (:func:`shardkit.encode.codec_ids`):
      ``wav16`` (int16 PCM in ``.wav`` members, the default) or ``mel-u8`` (the log-mel of each sample,
      computed by :class:`shardkit.device.LogMel` with ``mel`` and quantised to uint8, in ``.npy``
      members; see :mod:`shardkit.encode.mel_u8`). ``mel`` defaults to ``MelConfig.for_rate(sample_rate)``
      for codecs that store spectrograms; its ``normalize`` must be ``"none"`` (normalise on the device).
    """

    sample_rate: int = 32000
    mode: Mode = "recordings"
    segment_seconds: float = 5.0
    hop_seconds: float | None = None
    tail: Tail = "pad"
    max_seconds: float | None = 300.0
    channels: int = 1
    shard_size: int | str = "1GB"
    order: Order = "shuffled"
    codec: str = DEFAULT_CODEC
    mel: MelConfig | None = None

    def __post_init__(self) -> None:
        """Check every option (raising :class:`UsageError` naming it) and normalise: ``shard_size`` to
        bytes, ``hop_seconds`` to a float (``segment_seconds`` when None), ``mel`` to the codec's."""
        self._check_choices()
        self._check_seconds()
        size = parse_size(self.shard_size, name="shard_size")
        if size < 64_000:
            raise UsageError(f"shard_size {self.shard_size!r} is too small; use at least 64KB (1GB is typical)")
        hop = self.hop_seconds if self.hop_seconds is not None else self.segment_seconds
        mel = self.make_codec().mel
        self._check_mel(mel)
        for name, value in (("segment_seconds", float(self.segment_seconds)), ("hop_seconds", float(hop)),
                            ("shard_size", size), ("mel", mel)):
            object.__setattr__(self, name, value)

    def _check_choices(self) -> None:
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) \
                or not 1000 <= self.sample_rate <= 384000:
            raise UsageError(f"sample_rate must be an integer in 1000..384000 Hz, got {self.sample_rate!r}")
        for name, allowed in (("mode", ("recordings", "segments")), ("tail", ("pad", "keep", "drop")),
                              ("order", ("shuffled", "sorted")), ("channels", (1, 2))):
            if getattr(self, name) not in allowed:
                raise UsageError(f"{name} must be one of {', '.join(map(str, allowed))}, got {getattr(self, name)!r}")

    def _check_seconds(self) -> None:
        def positive(name: str, value: Any) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                and value > 0

        if not positive("segment_seconds", self.segment_seconds):
            raise UsageError(f"segment_seconds must be a positive number of seconds, got {self.segment_seconds!r}")
        if self.hop_seconds is not None and not positive("hop_seconds", self.hop_seconds):
            raise UsageError(f"hop_seconds must be a positive number of seconds, got {self.hop_seconds!r}")
        if self.max_seconds is not None and not positive("max_seconds", self.max_seconds):
            raise UsageError(f"max_seconds must be positive (or None for whole recordings), got {self.max_seconds!r}")
        for name in ("segment_seconds", "hop_seconds", "max_seconds"):
            value = getattr(self, name)
            if value is not None and value < MIN_SECONDS:  # 1e-9 s rounds to 0 frames: no cut at all, or none
                raise UsageError(f"{name} must be at least {MIN_SECONDS} s, got {value!r}")

    @staticmethod
    def _check_mel(mel: MelConfig | None) -> None:
        """A new pack's spectrograms have no all-zero mel band (``--n-fft 1`` gave all-zero mels). Checked
        here, not in :class:`MelConfig`, so that sets packed before with such settings stay readable."""
        if mel is None or not (empty := mel.empty_bands()):
            return
        raise UsageError(f"mel settings n_fft={mel.n_fft}, n_mels={mel.n_mels} at {mel.sample_rate} Hz leave {empty} "
                         f"of the {mel.n_mels} mel bands all zero (too few FFT bins between f_min and f_max): "
                         "raise --n-fft (2048 is typical) or lower --n-mels")

    def make_codec(self) -> Codec:
        """The codec object these options describe; :class:`UsageError` when they do not fit it."""
        try:
            cls = codec_class(self.codec)
        except UnknownCodecError:
            raise UsageError(f"codec must be one of {codec_ids()}, got {self.codec!r}") from None
        return cls.for_pack(self.sample_rate, self.channels, self.mel)

    def codec_config(self) -> dict[str, Any]:
        """The codec config written into every shard index."""
        return self.make_codec().config()

    def audio_doc(self) -> dict[str, Any]:
        """The manifest's ``audio`` map."""
        return self.make_codec().audio_doc()

    @property
    def layout(self) -> dict[str, Any]:
        if self.mode == "segments":
            return {"mode": "segments", "segment_seconds": self.segment_seconds,
                    "hop_seconds": self.hop_seconds, "tail": self.tail}
        return {"mode": "recordings", "max_seconds": self.max_seconds}

    def pieces(self, frames: int) -> list[Piece]:
        sr = self.sample_rate
        if self.mode == "segments":
            assert self.hop_seconds is not None
            return plan_segments(frames, round(self.segment_seconds * sr), round(self.hop_seconds * sr), self.tail)
        return plan_chunks(frames, round(self.max_seconds * sr) if self.max_seconds else None)



def options_doc(opts: PackOptions) -> dict[str, Any]:
    d = asdict(opts)
    return {k: d[k] for k in sorted(d)}


def fingerprint(items: list[SourceItem], rejects: list[Reject], opts: PackOptions) -> str:
    """sha256 over everything that decides the output bytes: options, sources (path, size, labels,
    extra columns, order) and CSV rejects."""
    h = hashlib.sha256()
    h.update(json.dumps(options_doc(opts), sort_keys=True).encode())
    for it in items:
        try:
            size = os.path.getsize(it.path)
        except OSError:
            size = -1
        h.update(json.dumps([it.rel, size, it.stem, it.row, it.primary_label, list(it.secondary_labels),
                             it.extra], sort_keys=True, default=str).encode())
    for r in rejects:
        h.update(json.dumps(r.to_dict(), sort_keys=True).encode())
    return h.hexdigest()
