"""``verify`` of a shard set on object storage: the same checks as for a folder
(:func:`shardkit.versions.verify.check_set`, through an :class:`~shardkit.read.remote.ObjectStorage`),
with shards streamed in ranged GETs of :data:`~shardkit.versions.verify.CHUNK` bytes,
:data:`~shardkit.versions.verify.PARALLEL` at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shardkit.versions.verify import VerifyReport, verify


def verify_remote(url: str, storage_options: dict[str, Any] | None,
                  progress: Callable[[int], None] | None) -> VerifyReport:
    """:func:`shardkit.verify` of the set at ``url``."""
    return verify(url, progress=progress, storage_options=storage_options)
