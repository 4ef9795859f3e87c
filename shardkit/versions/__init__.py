"""Producers of new versions of a shard set: :func:`~shardkit.versions.update.update` (a derived
version that reuses its parent's shards), :func:`~shardkit.versions.compact.compact` (a standalone copy),
and the history of a set (:mod:`~shardkit.versions.lineage`). Checking a set is :mod:`shardkit.check`."""
