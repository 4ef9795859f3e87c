"""Checking a shard set against what it claims: :func:`verify` (every byte against the manifest and
indexes, :mod:`~shardkit.check.verify`), the tar walk it uses (:mod:`~shardkit.check.tarscan`), and
:func:`~shardkit.check.reindex.reindex` (rebuild lost indexes from the shards). The rules of a single
index or manifest are format rules (:mod:`shardkit.format.checks`)."""

from shardkit.check.verify import VerifyProblem, VerifyReport, verify

__all__ = ["VerifyProblem", "VerifyReport", "verify"]
