"""Stage 1 — ingest: find sources (folder scan, metadata CSV), decode, resample, segment."""

from shardkit.ingest.decode import Decoded, decode_file
from shardkit.ingest.segment import Piece, plan_chunks, plan_segments
from shardkit.ingest.sources import Reject, SourceItem, discover, vocabulary_of

__all__ = [
    "Decoded", "Piece", "Reject", "SourceItem", "decode_file", "discover", "plan_chunks",
    "plan_segments", "vocabulary_of",
]
