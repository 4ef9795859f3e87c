"""The ``mel-u8`` codec (format v2 §3.3): a log-mel spectrogram quantised to uint8, stored as ``.npy``.

Quantisation scheme ``minmax`` (per stored sample): with ``lo``/``hi`` the smallest and largest dB
value of the sample's float32 log-mel ``S`` (``(n_mels, frames)``),

    q = round((S - lo) · 255 / (hi - lo))          uint8, 0..255
    S' = lo + q · (hi - lo) / 255                  (dequantised, on the device)

so ``|S' - S| ≤ (hi - lo) / 510`` dB (half a step) up to float32 rounding. With the front end's
``top_db`` floor, ``hi - lo ≤ top_db``: 80 dB gives a bound of 0.157 dB. ``lo`` and ``hi`` are float32
values stored in the sample's metadata and in the shard index (columns ``q_lo``, ``q_hi``) so a reader
dequantises a batch without opening the metadata. A constant spectrogram (``hi == lo``) stores zeros.

The ``.npy`` member is NPY format 1.0 with a 128-byte header, dtype ``|u1``, ``fortran_order: True``
and shape ``(n_mels, frames)``: numpy and webdataset load it as ``(n_mels, frames)``, and its bytes run
frame by frame, so a crop of frames ``[a, b)`` is one contiguous byte range ``[a·n_mels, b·n_mels)``
after the header.

:class:`MelU8` is the codec object (a :class:`shardkit.encode.FrameCodec`). This module needs numpy only;
computing the log-mel itself is :class:`shardkit.device.LogMel`'s job, imported (with torch) by
:meth:`MelU8.encode` on first use.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from shardkit.encode.base import Encoded, FrameCodec
from shardkit.encode.mel_config import MelConfig
from shardkit.errors import FormatError, UsageError

CODEC_ID = "mel-u8"
EXT = "npy"  # numpy and webdataset decode .npy members
NPY_HEADER_BYTES = 128
SCHEME = "minmax"
LEVELS = 255
_MAGIC = b"\x93NUMPY\x01\x00"


def codec_config(sample_rate: int, mel: dict[str, Any]) -> dict[str, Any]:
    """The self-describing codec config written into every shard index (and the manifest's ``audio``).

    ``mel`` is the front end's :meth:`MelConfig.to_dict` (``normalize`` is always ``"none"``: the
    stored values are dB; normalisation happens on the device after dequantising).
    """
    return {
        "codec_id": CODEC_ID,
        "sample_rate": int(sample_rate),
        "channels": 1,
        "sample_width": 1,
        "header_bytes": NPY_HEADER_BYTES,
        "n_mels": int(mel["n_mels"]),
        "mel": dict(mel),
        "quantization": {"scheme": SCHEME, "levels": LEVELS, "unit": "dB",
                         "max_error": "(q_hi - q_lo) / 510 dB"},
    }


def quantize(db: np.ndarray) -> tuple[np.ndarray, float, float]:
    """float log-mel ``(n_mels, frames)`` in dB → ``(uint8 (n_mels, frames), lo, hi)`` (float32 values)."""
    x = np.asarray(db, dtype=np.float32)
    if x.ndim != 2 or x.size == 0:
        raise FormatError(f"mel-u8 quantises a non-empty (n_mels, frames) array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise FormatError("mel-u8 cannot quantise a spectrogram with NaN or infinite values")
    lo, hi = np.float32(x.min()), np.float32(x.max())
    span = np.float32(hi - lo)
    if span <= 0:
        return np.zeros(x.shape, dtype=np.uint8), float(lo), float(hi)
    q = np.rint((x - lo) * (np.float32(LEVELS) / span))
    return np.clip(q, 0, LEVELS).astype(np.uint8), float(lo), float(hi)


def dequantize(q: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The inverse of :func:`quantize`: float32 dB of the same shape."""
    step = np.float32((np.float32(hi) - np.float32(lo)) / np.float32(LEVELS))
    return np.float32(lo) + q.astype(np.float32) * step


def max_error_db(lo: float, hi: float) -> float:
    """The scheme's bound on ``|dequantize(quantize(S)) - S|`` in dB for a sample with ``lo``/``hi``."""
    return (float(hi) - float(lo)) / (2 * LEVELS)


def npy_header(n_mels: int, frames: int) -> bytes:
    """The 128-byte NPY 1.0 header of a ``(n_mels, frames)`` Fortran-ordered uint8 array."""
    text = f"{{'descr': '|u1', 'fortran_order': True, 'shape': ({n_mels}, {frames}), }}"
    room = NPY_HEADER_BYTES - len(_MAGIC) - 2
    if len(text) + 1 > room:
        raise FormatError(f"a mel-u8 array of shape ({n_mels}, {frames}) does not fit a 128-byte NPY header")
    text = text.ljust(room - 1) + "\n"
    return _MAGIC + room.to_bytes(2, "little") + text.encode("latin1")


def encode(q: np.ndarray) -> bytes:
    """uint8 ``(n_mels, frames)`` → the ``.npy`` member's bytes (header + frame-major payload)."""
    if q.dtype != np.uint8 or q.ndim != 2:
        raise TypeError(f"mel-u8 encodes a uint8 (n_mels, frames) array, got {q.dtype} {q.shape}")
    n_mels, frames = q.shape
    return npy_header(n_mels, frames) + np.ascontiguousarray(q.T).tobytes()


def parse_header(header: bytes) -> tuple[int, int]:
    """Check a mel-u8 NPY header; return ``(n_mels, frames)``."""
    if len(header) < NPY_HEADER_BYTES or header[:8] != _MAGIC:
        raise FormatError("not an NPY 1.0 member with a 128-byte header")
    n = int.from_bytes(header[8:10], "little")
    if 10 + n != NPY_HEADER_BYTES:
        raise FormatError(f"NPY header is {10 + n} bytes, mel-u8 writes {NPY_HEADER_BYTES}")
    try:
        d = ast.literal_eval(header[10:NPY_HEADER_BYTES].decode("latin1").strip())
        shape = tuple(int(v) for v in d["shape"])
        ok = d["descr"] == "|u1" and d["fortran_order"] is True and len(shape) == 2
    except (ValueError, SyntaxError, KeyError, TypeError) as exc:
        raise FormatError(f"NPY header is not readable ({exc})") from exc
    if not ok:
        raise FormatError(f"NPY header {d} is not a Fortran-ordered uint8 (n_mels, frames) array")
    return shape[0], shape[1]


def decode(data: bytes | memoryview) -> np.ndarray:
    """``.npy`` member bytes → uint8 ``(n_mels, frames)`` (a zero-copy, Fortran-ordered view)."""
    n_mels, frames = parse_header(bytes(data[:NPY_HEADER_BYTES]))
    flat = np.frombuffer(data, dtype=np.uint8, count=n_mels * frames, offset=NPY_HEADER_BYTES)
    return flat.reshape(frames, n_mels).T


__all__ = ["CODEC_ID", "LEVELS", "SCHEME", "MelU8", "codec_config", "decode", "dequantize", "encode", "max_error_db",
           "npy_header", "parse_header", "quantize"]


#: the front end of this process, made on first use: ((MelConfig, device), LogMel)
_FRONTEND: tuple[tuple[MelConfig, str], Any] | None = None


def _log_mel(config: MelConfig, pcm: np.ndarray, device: str) -> np.ndarray:
    """int16 ``(frames,)`` → float32 dB log-mel ``(n_mels, 1 + frames // hop_length)`` by the device
    stage's :class:`~shardkit.device.LogMel` (torch is imported here, on first use)."""
    global _FRONTEND
    import torch

    from shardkit.device.frontend import LogMel

    if _FRONTEND is None or _FRONTEND[0] != (config, device):
        _FRONTEND = ((config, device), LogMel(config).to(device))
    with torch.inference_mode():
        audio = torch.from_numpy(np.array(pcm, dtype=np.int16)).to(device)[None]  # a writable copy
        return _FRONTEND[1](audio)[0].cpu().numpy()


@dataclass(frozen=True)
class MelU8(FrameCodec):
    """uint8 log-mel frames (``n_mels`` values each) of mono audio, in a standard ``.npy`` member."""

    codec_id: ClassVar[str] = CODEC_ID
    ext: ClassVar[str] = EXT
    header_bytes: ClassVar[int] = NPY_HEADER_BYTES
    dtype: ClassVar[np.dtype] = np.dtype(np.uint8)
    batch_key: ClassVar[str] = "mel"
    index_columns: ClassVar[dict[str, str]] = {"q_lo": "float32", "q_hi": "float32"}
    #: the front end's settings a pack may give (:class:`MelConfig` fields; the rest follow the sample rate)
    pack_options: ClassVar[dict[str, tuple[type, str]]] = {
        "n_mels": (int, "mel bands [128]."),
        "n_fft": (int, "FFT size in samples [2048]."),
        "hop_length": (int, "samples between frames [512]."),
        "f_min": (float, "lowest frequency, Hz [50]."),
        "f_max": (float, "highest frequency, Hz [14000]."),
        "top_db": (float, "dynamic range kept below each sample's peak, dB [80]."),
    }

    sample_rate: int
    front_end: MelConfig
    channels: int = 1

    @classmethod
    def for_pack(cls, sample_rate: int, channels: int, mel: MelConfig | None) -> MelU8:
        if channels != 1:
            raise UsageError("codec mel-u8 stores the mono log-mel: use channels=1")
        mel = mel if mel is not None else MelConfig.for_rate(sample_rate)
        if not isinstance(mel, MelConfig):
            raise UsageError(f"mel must be a shardkit.MelConfig, got {type(mel).__name__}")
        if mel.sample_rate != sample_rate:
            raise UsageError(f"the mel front end is set for {mel.sample_rate} Hz but the pack resamples to "
                             f"{sample_rate} Hz; make them equal")
        if mel.normalize != "none":
            raise UsageError("mel-u8 stores dB values: use MelConfig(normalize='none') for the pack and "
                             "normalise on the device (DevicePipeline with MelConfig(normalize='per_example'))")
        return cls(int(sample_rate), mel)

    @classmethod
    def pack_settings(cls, sample_rate: int, options: Mapping[str, Any]) -> dict[str, Any]:
        """``mel``: ``MelConfig.for_rate(sample_rate, **options)`` when any option is given."""
        super().pack_settings(sample_rate, options)
        return {"mel": MelConfig.for_rate(sample_rate, **options)} if options else {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MelU8:
        mel = config["mel"]
        if not isinstance(mel, dict):
            raise TypeError(f"'mel' must be a map of front-end settings, got {mel!r}")
        if int(config.get("channels", 1)) != 1 or int(config.get("header_bytes", NPY_HEADER_BYTES)) != NPY_HEADER_BYTES:
            raise ValueError(f"{CODEC_ID} is mono with a {NPY_HEADER_BYTES}-byte header, the map says {dict(config)}")
        return cls(int(config["sample_rate"]), MelConfig.from_dict(mel))

    def config(self) -> dict[str, Any]:
        return codec_config(self.sample_rate, self.front_end.to_dict())

    def audio_doc(self) -> dict[str, Any]:
        c = self.config()
        return {"codec": CODEC_ID, "sample_rate": self.sample_rate, "channels": 1, "sample_width": 1,
                "mel": c["mel"], "quantization": c["quantization"]}

    @property
    def mel(self) -> MelConfig:
        return self.front_end

    @property
    def lanes(self) -> int:
        return self.front_end.n_mels

    @property
    def seconds_per_frame(self) -> float:
        return self.front_end.hop_length / self.sample_rate

    def frames_for_samples(self, samples: int) -> int:
        return self.front_end.frames_for(int(samples))

    def encode(self, pcm: np.ndarray, *, device: str = "cpu") -> Encoded:
        """int16 ``(frames, 1)`` → the quantised log-mel as an ``.npy`` member, its ``q_lo``/``q_hi``."""
        q, lo, hi = quantize(_log_mel(self.front_end, pcm[:, 0], str(device)))
        return Encoded(encode(q), q.shape[1], (("q_lo", lo), ("q_hi", hi)),
                       (("mel_frames", q.shape[1]), ("q_lo", lo), ("q_hi", hi)))

    def frames_view(self, values: np.ndarray) -> np.ndarray:
        """Frame-major ``(frames, n_mels)`` → uint8 ``(n_mels, frames)``, the shape numpy loads the member in."""
        return values.T

    def batch_fields(self, columns: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
        """``mel_range``: float32 ``(B, 2)``, each row's dB range ``[q_lo, q_hi]`` for dequantising."""
        return {"mel_range": np.stack([columns["q_lo"][rows], columns["q_hi"][rows]], axis=1)}

    def batch_field_specs(self) -> dict[str, tuple[tuple[int, ...], type]]:
        return {"mel_range": ((2,), np.float32)}

    def check_device(self, device: str) -> None:
        super().check_device(device)
        if str(device) == "cpu":
            return
        import torch

        try:
            kind = torch.device(str(device)).type
        except (RuntimeError, ValueError, TypeError):
            raise UsageError(f"device {device!r} is not a torch device; use 'cpu', 'cuda' or 'cuda:N'") from None
        if kind not in ("cpu", "cuda"):
            raise UsageError(f"device {device!r}: mel-u8 packs compute on 'cpu' or 'cuda', not {kind!r}")
        if kind == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"device {device!r}: torch sees no CUDA GPU here; use device 'cpu' (--device cpu)")

    def prepare_worker(self) -> None:
        import torch

        torch.set_num_threads(1)  # one decoding process per core: no thread pools fighting over them
