"""The torch layer of reading: everything a DataLoader worker runs.

:class:`ShardDataset` (:mod:`~shardkit.dataset.dataset`) streams batches of a
:class:`~shardkit.read.ShardSet`. Where each part lives:

- which items an epoch reads, in which order, with which crops (the shuffle, subsets and weighted draws):
  :mod:`~shardkit.dataset.order` (pure numpy);
- how the epoch splits across ranks and DataLoader workers: :mod:`~shardkit.dataset.plan` (pure numpy);
- one batch from a list of items: :mod:`~shardkit.dataset.assemble` (with :mod:`~shardkit.dataset.crc`,
  :mod:`~shardkit.dataset.labels`, :mod:`~shardkit.dataset.targets` and the shared-memory batches of
  :mod:`~shardkit.dataset.transport`);
- the resumable cursor (:mod:`~shardkit.dataset.cursor`), the options (:mod:`~shardkit.dataset.options`),
  where this process sits (:mod:`~shardkit.dataset.topology`);
- training recipes (docs/recipes.md): :mod:`~shardkit.dataset.recipe` and :class:`Mixture` of several sets
  (:mod:`~shardkit.dataset.mixture`).

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
