"""Where this process sits in a (distributed, multi-worker) training job: the one place that looks."""

from __future__ import annotations

import os
from typing import NamedTuple

from shardkit.errors import UsageError


class Topology(NamedTuple):
    """Rank of this process among ``world_size`` training processes, and DataLoader worker
    ``worker`` of ``num_workers`` within it (0 of 1 outside a worker process)."""

    rank: int
    world_size: int
    worker: int
    num_workers: int


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"environment variable {name}={value!r} is not an integer") from None


def detect_topology(rank: int | None = None, world_size: int | None = None) -> Topology:
    """Detect rank, world size and DataLoader worker of the calling process.

    The rank and world size come from, in order: the explicit arguments (give both or neither),
    ``torch.distributed`` when it is initialised, the ``RANK``/``WORLD_SIZE`` environment variables
    (torchrun sets them), else rank 0 of 1. The worker comes from
    ``torch.utils.data.get_worker_info()``. Raises :class:`UsageError` for inconsistent values.
    """
    if (rank is None) != (world_size is None):
        raise UsageError(f"give both rank and world_size or neither (got rank={rank}, "
                         f"world_size={world_size})")
    source = "arguments"
    if rank is None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            rank, world_size, source = dist.get_rank(), dist.get_world_size(), "torch.distributed"
        else:
            env_rank, env_world = _env_int("RANK"), _env_int("WORLD_SIZE")
            if env_world is not None:
                rank, world_size, source = env_rank or 0, env_world, "RANK/WORLD_SIZE"
            elif env_rank not in (None, 0):
                raise UsageError(f"RANK={env_rank} is set but WORLD_SIZE is not; set both")
            else:
                rank, world_size = 0, 1
    if isinstance(rank, bool) or isinstance(world_size, bool):
        raise UsageError("rank and world_size must be integers")
    rank, world_size = int(rank), int(world_size)
    if world_size < 1 or not 0 <= rank < world_size:
        raise UsageError(f"invalid topology from {source}: rank={rank}, world_size={world_size} "
                         "(need world_size >= 1 and 0 <= rank < world_size)")

    from torch.utils.data import get_worker_info

    info = get_worker_info()
    worker, num_workers = (0, 1) if info is None else (int(info.id), int(info.num_workers))
    return Topology(rank, world_size, worker, num_workers)
