"""Stage 2 — encode: turn decoded int16 PCM and its metadata into member bytes (codecs)."""

from shardkit.encode import meta, wav16

__all__ = ["meta", "wav16"]
