"""The torch layer of reading: everything a DataLoader worker runs.

:class:`ShardDataset` (:mod:`~shardkit.dataset.dataset`) streams batches of a
:class:`~shardkit.read.ShardSet`: the epoch plan (:mod:`~shardkit.dataset.plan`: order, split across
ranks and workers, crops; pure numpy), the batch reader (:mod:`~shardkit.dataset.batch`, with
:mod:`~shardkit.dataset.crc` and :mod:`~shardkit.dataset.labels`), the resumable cursor
(:mod:`~shardkit.dataset.cursor`), the options (:mod:`~shardkit.dataset.options`), where this process
sits (:mod:`~shardkit.dataset.topology`) and the shared-memory batches (:mod:`~shardkit.dataset.transport`).
Training recipes (docs/recipes.md): subsets and weighted epochs (:mod:`~shardkit.dataset.sampling`,
:mod:`~shardkit.dataset.recipe`) and :class:`Mixture` of several sets (:mod:`~shardkit.dataset.mixture`).

``ShardDataset`` and ``Mixture`` are imported on first use, so the plan and the topology work without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shardkit.dataset.topology import Topology, detect_topology

if TYPE_CHECKING:
    from shardkit.dataset.dataset import ShardDataset
    from shardkit.dataset.mixture import Mixture

__all__ = ["Mixture", "ShardDataset", "Topology", "detect_topology"]


def __getattr__(name: str) -> Any:
    if name == "ShardDataset":
        from shardkit.dataset.dataset import ShardDataset

        return ShardDataset
    if name == "Mixture":
        from shardkit.dataset.mixture import Mixture

        return Mixture
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
