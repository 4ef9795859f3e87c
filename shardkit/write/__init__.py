"""Stage 3 — write: deterministic tar members (``tar.py``), one crash-safe shard with its index
(``shards.py``), a whole shard set (:class:`ShardSetWriter`, ``shardset_writer.py``) and ``pack``
(``pack.py``: options in ``options.py``, decoding processes in ``workers.py``, resumable state in
``state.py``)."""

from shardkit.write.options import PackOptions
from shardkit.write.pack import PackProgress, PackResult, pack
from shardkit.write.shardset_writer import ShardSetWriter

__all__ = ["PackOptions", "PackProgress", "PackResult", "ShardSetWriter", "pack"]
