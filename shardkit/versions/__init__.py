"""Stage 6 — versions: check a shard set against its manifest (:func:`verify`); the manifest itself
is part of the format (:class:`shardkit.format.Manifest`)."""

from shardkit.versions.verify import Problem, VerifyReport, verify

__all__ = ["Problem", "VerifyReport", "verify"]
