"""How an epoch splits across DDP ranks and DataLoader workers: which items each batch of each rank
holds, and which worker reads it (pure functions, no I/O, no torch; docs/determinism.md).

- :func:`plan_rank` splits the epoch order ``G`` (:func:`~shardkit.dataset.order.shuffle.epoch_order`,
  a function of the seed, the epoch and the set only) from ``start`` on into global steps of
  ``world_size × batch_size`` items; rank r takes the r-th batch of each step; batch t of a rank goes to
  DataLoader worker t % K.
- :func:`describe_plan`, :func:`plan_warnings`: the same split as a dry run, with what would go wrong (an
  empty rank, ranks with different batch counts, idle workers); :func:`shardkit.plan_split`
  (:mod:`shardkit.dataset.dryrun`) runs it for a shard set read with a dataset's options.

Which items ``G`` holds, in which order, is :mod:`shardkit.dataset.order`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shardkit.errors import UsageError

PARTIAL_POLICIES = ("drop", "pad", "keep")


@dataclass(frozen=True)
class RankPlan:
    """The batches of one rank over ``G[start:]`` (``n`` = len(G)); see :func:`plan_rank`.

    Positions are in *remainder coordinates* ``q`` (``G[start + q]``); entries at ``q ≥ n − start``
    exist only with ``partial="pad"``: they wrap to the start of ``G`` and are flagged invalid.
    """

    n: int
    start: int
    world_size: int
    rank: int
    batch_size: int
    partial: str

    @property
    def remaining(self) -> int:
        """Items left in the epoch, ``n − start``."""
        return self.n - self.start

    @property
    def step_items(self) -> int:
        """Items per global step, ``world_size × batch_size``."""
        return self.world_size * self.batch_size

    @property
    def steps(self) -> int:
        """Global steps in which every rank has a full batch (drop/pad), or the full steps (keep)."""
        full, rest = divmod(self.remaining, self.step_items)
        return full + (1 if self.partial == "pad" and rest else 0)

    def _tail(self) -> tuple[int, int]:
        """keep: (q0, length) of this rank's share of the last, partial step."""
        full = self.remaining // self.step_items
        rest = self.remaining - full * self.step_items
        each, extra = divmod(rest, self.world_size)
        q0 = full * self.step_items + self.rank * each + min(self.rank, extra)
        return q0, each + (1 if self.rank < extra else 0)

    def __len__(self) -> int:
        """Batches this rank gets."""
        if self.partial == "keep":
            return self.steps + (1 if self._tail()[1] else 0)
        return self.steps

    def batch(self, t: int) -> tuple[int, int]:
        """Batch ``t`` of this rank as ``(q0, length)``: remainder positions ``q0 … q0+length−1``."""
        if not 0 <= t < len(self):
            raise IndexError(f"batch {t} out of range for a rank with {len(self)} batches")
        if t < self.steps:
            return t * self.step_items + self.rank * self.batch_size, self.batch_size
        return self._tail()

    def positions(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``t`` as positions into ``G`` (int64 (len,)) and a validity mask (bool (len,))."""
        q0, length = self.batch(t)
        q = np.arange(q0, q0 + length, dtype=np.int64)
        return (self.start + q) % max(self.n, 1), q < self.remaining

    def worker_batches(self, worker: int, num_workers: int) -> range:
        """The batches DataLoader worker ``worker`` of ``num_workers`` produces: ``t ≡ worker (mod K)``."""
        return range(worker, len(self), num_workers)


def plan_rank(
    n: int,
    *,
    world_size: int,
    rank: int,
    batch_size: int,
    partial: str,
    start: int = 0,
) -> RankPlan:
    """Plan the batches of ``rank`` over ``G[start:]`` of an epoch of ``n`` items.

    Global step t holds remainder items ``[t·W·B, (t+1)·W·B)``; rank r takes ``[r·B, (r+1)·B)`` of
    it. The last, partial step (R < W·B items): ``drop`` leaves it out; ``pad`` fills it by wrapping
    to the start of G (padding flagged invalid), so every rank has ``ceil((n−start)/(W·B))`` batches;
    ``keep`` splits the R items among ranks as evenly as possible, contiguously, so a rank has at
    most one extra, possibly short, batch and every item is read exactly once.
    """
    if partial not in PARTIAL_POLICIES:
        raise UsageError(f"partial must be one of {PARTIAL_POLICIES}, got {partial!r}")
    if batch_size < 1:
        raise UsageError(f"batch_size must be >= 1, got {batch_size}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise UsageError(f"invalid rank {rank} of world_size {world_size}")
    if not 0 <= start <= n:
        raise UsageError(f"start must be within 0..{n} (items in the epoch), got {start}")
    return RankPlan(int(n), int(start), int(world_size), int(rank), int(batch_size), partial)


def describe_plan(
    n_items: int,
    *,
    world_size: int,
    workers: int,
    batch_size: int,
    partial: str,
    start: int = 0,
) -> list[dict]:
    """Per-rank summary of the split of ``G[start:]`` of an epoch of ``n_items`` items (a dry run).

    One dict per rank: ``rank``, ``samples`` (valid items it reads), ``batches``, ``padded`` (filler
    items, ``partial="pad"``), ``worker_batches`` (list: batches of each of the ``workers``
    DataLoader workers; 0 workers counts as one, the main process) and ``warnings`` (list[str]:
    an empty rank, ranks with different batch counts, idle workers, items left out by ``drop``).
    :func:`plan_warnings` collects the warnings of all ranks.
    """
    if workers < 0:
        raise UsageError(f"workers must be >= 0, got {workers}")
    k = max(int(workers), 1)
    rows: list[dict] = []
    for rank in range(int(world_size)):
        rp = plan_rank(n_items, world_size=world_size, rank=rank, batch_size=batch_size,
                       partial=partial, start=start)
        batches = len(rp)
        valid = 0
        for t in range(batches):
            q0, length = rp.batch(t)
            valid += max(0, min(q0 + length, rp.remaining) - q0)
        padded = sum(rp.batch(t)[1] for t in range(batches)) - valid
        rows.append({"rank": rank, "samples": valid, "batches": batches, "padded": padded,
                     "worker_batches": [len(rp.worker_batches(w, k)) for w in range(k)], "warnings": []})
    counts = [r["batches"] for r in rows]
    total_valid = sum(r["samples"] for r in rows)
    for r in rows:
        w = r["warnings"]
        if r["batches"] == 0:
            w.append(f"rank {r['rank']} gets no batch ({n_items - start} items for {world_size} ranks of "
                     f"batch_size {batch_size}): lower batch_size or world_size")
        if max(counts) != min(counts):
            w.append(f"ranks get {min(counts)} to {max(counts)} batches (partial={partial!r}): DDP training "
                     "would hang on the last step; use partial='pad' or 'drop' for training")
        elif r["samples"] == 0:
            w.append(f"rank {r['rank']} reads only padding ({r['batches']} batch(es) of filler items)")
        idle = sum(1 for b in r["worker_batches"] if b == 0)
        if idle and r["batches"]:
            w.append(f"rank {r['rank']}: {idle} of {k} DataLoader workers get no batch")
    lost = (n_items - start) - total_valid
    if lost > 0 and rows:
        rows[0]["warnings"].append(f"partial='drop' leaves {lost} of {n_items - start} items out of this epoch")
    return rows


def plan_warnings(rows: list[dict]) -> list[str]:
    """All warnings of a :func:`describe_plan` result, each once, in order."""
    out: list[str] = []
    for r in rows:
        for w in r["warnings"]:
            if w not in out:
                out.append(w)
    return out
