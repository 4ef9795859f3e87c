"""Stage 3 — write: deterministic tar members, crash-safe shards with indexes, and ``pack``."""

from shardkit.write.pack import PackOptions, PackProgress, PackResult, pack

__all__ = ["PackOptions", "PackProgress", "PackResult", "pack"]
