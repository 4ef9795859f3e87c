"""The read stage: a shard set as index columns (:class:`ShardSet`) read through a
:class:`Storage` (:class:`LocalStorage` for a folder), the epoch plan
(:mod:`shardkit.read.plan`) and the torch dataset (:class:`ShardDataset`).

``ShardDataset`` is imported lazily so that ``ShardSet`` and the plan work without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shardkit.read.shardset import ShardSet
from shardkit.read.storage import LocalStorage, Storage
from shardkit.read.topology import Topology, detect_topology

if TYPE_CHECKING:
    from shardkit.read.dataset import ShardDataset

__all__ = ["LocalStorage", "ShardDataset", "ShardSet", "Storage", "Topology", "detect_topology"]


def __getattr__(name: str) -> Any:
    if name == "ShardDataset":
        from shardkit.read.dataset import ShardDataset

        return ShardDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
