"""The local disk cache of whole shards of sets on object storage.

- :mod:`~shardkit.storage.cache.store`: :class:`ShardCache`, the machine-wide store of verified whole shards
  (content-addressed entries, one download per shard, LRU eviction that never removes an entry in use);
- :mod:`~shardkit.storage.cache.wrapper`: :class:`CachedStorage`, the :class:`~shardkit.storage.base.Storage`
  that reads a set's shards through a store (``cache_dir``);
- :mod:`~shardkit.storage.cache.worker`: the private store the DataLoader workers of one process share when
  there is no ``cache_dir``.
"""

from __future__ import annotations

from shardkit.storage.cache.store import CacheDiskError, CorruptShard, ShardCache
from shardkit.storage.cache.wrapper import CachedStorage

__all__ = ["CacheDiskError", "CachedStorage", "CorruptShard", "ShardCache"]
