"""The log-mel front end's settings, :class:`MelConfig`, as the device stage sees them.

They are defined with the codecs (:mod:`shardkit.encode.mel_config`), because they are part of the
on-disk contract of mel-u8 shard sets; the device stage only consumes them.
"""

from shardkit.encode.mel_config import NORMALIZE_MODES, MelConfig

__all__ = ["NORMALIZE_MODES", "MelConfig"]
