"""Stage 2 — encode: codecs that turn int16 audio into a sample's data member, and its metadata.

* :class:`Codec` (``base.py``) — the interface (members read whole and decoded); :class:`FrameCodec`
  — members cropped by byte range; :class:`WaveformCodec` — waveform frames. :class:`Wav16`
  (``wav16.py``), :class:`MelU8` (``mel_u8.py``) — the codecs (both frame codecs); :func:`get_codec`
  (``registry.py``) — a codec from an index or manifest map; :func:`register_codec` — add one.
* :class:`MelConfig` (``mel_config.py``) — the log-mel settings mel-u8 stores (torch-free).
* ``meta.py`` — the per-sample msgpack member (``KEY.mp``).
"""

from shardkit.encode import mel_u8, meta, wav16
from shardkit.encode.base import Codec, Encoded, FrameCodec, WaveformCodec
from shardkit.encode.mel_config import MelConfig
from shardkit.encode.mel_u8 import MelU8
from shardkit.encode.registry import CODECS, codec_class, codec_ids, get_codec, pack_options, register_codec
from shardkit.encode.wav16 import Wav16

__all__ = ["CODECS", "Codec", "Encoded", "FrameCodec", "MelConfig", "MelU8", "Wav16", "WaveformCodec",
           "codec_class", "codec_ids", "get_codec", "mel_u8", "meta", "pack_options", "register_codec", "wav16"]
