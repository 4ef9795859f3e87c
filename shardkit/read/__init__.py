"""The shard-set model, without torch: a set as checked index columns (:class:`ShardSet`,
:mod:`~shardkit.read.shardset`), the ancestors' shards of a derived set (:mod:`~shardkit.read.lineage`),
and looking at a set without training on it (:mod:`~shardkit.read.browse`, :mod:`~shardkit.read.show`).
Bytes come through :mod:`shardkit.storage`; the torch dataset is :mod:`shardkit.dataset`."""

from shardkit.read.shardset import ShardSet

__all__ = ["ShardSet"]
