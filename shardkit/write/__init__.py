"""Stage 3 — write: deterministic tar members (``tar.py``), one crash-safe shard with its index
(``shards.py``), a whole shard set (:class:`ShardSetWriter`, ``shardset_writer.py``) and ``pack``
(``pack.py``: options in ``options.py``, decoding in ``workers.py`` run by an engine of ``engines.py``
— local processes — or ``dask_engine.py`` — a Dask cluster —, resumable state in ``state.py``)."""

from shardkit.write.dask_engine import DaskEngine
from shardkit.write.engines import Engine, LocalEngine
from shardkit.write.options import PackOptions
from shardkit.write.pack import PackProgress, PackResult, pack
from shardkit.write.shardset_writer import ShardSetWriter

__all__ = ["DaskEngine", "Engine", "LocalEngine", "PackOptions", "PackProgress", "PackResult", "ShardSetWriter",
           "pack"]
