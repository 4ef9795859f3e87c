"""Where a :class:`~shardkit.dataset.ShardDataset` stands in its epochs: the epoch, a restored position,
and the ``state_dict`` of a checkpoint.

:class:`EpochCursor` owns the epoch and the resume state the way lhotse's ``CutSampler`` owns its
order and ``state_dict``; the dataset only asks it where an iteration starts and tells it what was
yielded. Its shared values (:class:`SharedInt`) reach DataLoader workers, persistent ones too.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.context import get_spawning_popen
from pathlib import Path
from typing import Any, TypeVar

from shardkit.dataset.options import MAX_EPOCH, whole_number
from shardkit.dataset.order.shuffle import ORDER_VERSION
from shardkit.errors import UsageError

#: Version of the :meth:`EpochCursor.state_dict` layout.
STATE_FORMAT = 1

T = TypeVar("T")


class SharedInt:
    """An int shared between the main process and DataLoader workers (also persistent ones).

    Backed by a ``multiprocessing.RawValue`` that workers inherit (fork) or receive while being
    started (spawn/forkserver). Pickled any other way it becomes a plain, process-local int.
    """

    def __init__(self, value: int = 0) -> None:
        self._raw: Any = multiprocessing.RawValue("q", int(value))
        self._plain: int | None = None

    @property
    def value(self) -> int:
        return int(self._raw.value) if self._raw is not None else int(self._plain or 0)

    @value.setter
    def value(self, v: int) -> None:
        if self._raw is not None:
            self._raw.value = int(v)
        else:
            self._plain = int(v)

    def __getstate__(self) -> dict[str, Any]:
        if self._raw is not None and get_spawning_popen() is not None:
            return {"_raw": self._raw, "_plain": None}
        return {"_raw": None, "_plain": self.value}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)




@dataclass(frozen=True)
class OrderKey:
    """What the order of an epoch depends on besides the epoch: a checkpoint must match it."""

    seed: int
    version_id: str
    num_items: int
    shuffle: bool
    window_bytes: int
    root: Path  #: for messages only
    #: what else chose the epoch's items (a subset, weights, a mixture; :mod:`.order.sampling`): a digest, "" for none
    recipe: str = ""


class EpochCursor:
    """The epoch and the position in it, shared with DataLoader workers.

    ``key``: the dataset's :class:`OrderKey`; ``step_items``: items per global step (world size ×
    batch size), to turn a number of batches into a position.
    """

    def __init__(self, key: OrderKey, step_items: int) -> None:
        self.key = key
        self.step_items = int(step_items)
        self._epoch = SharedInt(0)
        # a restored position: start ``_resume_start`` in epoch ``_resume_epoch``; ``_resume_gen``
        # counts restores, so each process applies a restore to one iteration only
        self._resume_start = SharedInt(0)
        self._resume_epoch = SharedInt(-1)
        self._resume_gen = SharedInt(0)
        self._used_gen = 0            # process-local: the last restore this process has iterated
        self._iter_start = 0          # process-local: start of this process's current iteration
        self._iter_yielded = 0        # process-local: batches yielded by it (num_workers=0)

    @property
    def epoch(self) -> int:
        return self._epoch.value

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch of the next iteration; a restored position of another epoch is dropped."""
        epoch = whole_number(epoch, "epoch", 0, MAX_EPOCH)
        self._epoch.value = int(epoch)
        if int(epoch) != self._resume_epoch.value:
            self._resume_epoch.value = -1
        self._iter_start, self._iter_yielded = 0, 0

    def _restored(self) -> bool:
        """A restore of the current epoch that this process has not iterated yet."""
        return self._resume_epoch.value == self.epoch and self._resume_gen.value != self._used_gen

    def pending_start(self) -> int:
        """Where the next iteration of this process starts in ``G``: a restored position, or 0."""
        return min(self._resume_start.value, self.key.num_items) if self._restored() else 0

    def begin_iteration(self) -> tuple[int, int]:
        """Start an iteration of this process: returns its ``(epoch, start)`` and uses up a restore."""
        epoch, start = self.epoch, self.pending_start()
        self._used_gen = self._resume_gen.value  # a restore applies to one iteration (per process)
        self._iter_start, self._iter_yielded = start, 0
        return epoch, start

    def counted(self, batches: Iterator[T]) -> Iterator[T]:
        """``batches``, counting the ones this process yields (the default of :meth:`position`)."""
        for batch in batches:
            self._iter_yielded += 1
            yield batch

    def position(self, batches_done: int | None = None) -> int:
        """Items of the epoch consumed after ``batches_done`` batches per rank (see :meth:`state_dict`)."""
        if batches_done is None:
            start, done = self._iter_start, self._iter_yielded
            if done == 0:
                start = self.pending_start() or start
        else:
            if isinstance(batches_done, bool) or int(batches_done) < 0:
                raise UsageError(f"batches_done must be a non-negative integer, got {batches_done!r}")
            start, done = self._iter_start, int(batches_done)
            if self._restored():
                start = self.pending_start()  # restored, not iterated yet in this process
        return min(start + done * self.step_items, self.key.num_items)

    def state_dict(self, batches_done: int | None = None) -> dict[str, Any]:
        """The checkpoint layout of :meth:`ShardDataset.state_dict` (format :data:`STATE_FORMAT`)."""
        k = self.key
        return {"format": STATE_FORMAT, "seed": k.seed, "epoch": self.epoch,
                "consumed": int(self.position(batches_done)), "num_items": k.num_items,
                "version_id": k.version_id, "shuffle": k.shuffle, "window_bytes": k.window_bytes,
                "order": ORDER_VERSION, "recipe": k.recipe}

    def restore(self, state: dict[str, Any]) -> None:
        """Check ``state`` against this cursor's :class:`OrderKey`, then make the next iteration of
        ``state["epoch"]`` start at item ``consumed``. Raises :class:`UsageError` naming the mismatch."""
        consumed = check_state(state, self.key)
        self._epoch.value = int(state["epoch"])
        self._resume_start.value = consumed
        self._resume_epoch.value = int(state["epoch"])
        self._resume_gen.value = self._resume_gen.value + 1
        self._iter_start, self._iter_yielded = consumed, 0

    load_state_dict = restore


def check_state(state: Any, key: OrderKey) -> int:
    """Validate a checkpoint ``state`` for a dataset whose order depends on ``key``; returns ``consumed``."""
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise UsageError(f"not a ShardDataset state (format {STATE_FORMAT}): {state!r:.200}")
    for name in ("seed", "epoch", "consumed", "num_items", "version_id"):
        if name not in state:
            raise UsageError(f"ShardDataset state lacks {name!r}")
    seed = whole_number(state["seed"], "the state's seed")
    whole_number(state["epoch"], "the state's epoch", 0, MAX_EPOCH)
    whole_number(state["num_items"], "the state's num_items", 0)
    if seed != key.seed:
        raise UsageError(f"the checkpoint was saved with seed={state['seed']}, this dataset has "
                         f"seed={key.seed}: the epoch order would differ; pass seed={state['seed']}")
    if str(state["version_id"]) != key.version_id:
        raise UsageError(f"the checkpoint was saved on shard set version {state['version_id']}, "
                         f"{key.root} is version {key.version_id}: a different set "
                         "of samples has a different order; resume on the same shard set")
    if str(state.get("recipe", "")) != key.recipe:
        raise UsageError("the checkpoint was saved with another subset, weights, samples_per_epoch or mixture "
                         "(keys=/where=/weights=/Mixture parts and proportions): the epoch's items would differ; "
                         "build the dataset as the run that saved it did")
    if int(state["num_items"]) != key.num_items:
        raise UsageError(f"the checkpoint's epoch has {state['num_items']} items, this dataset "
                         f"{key.num_items} (crops_per_recording differs?)")
    for name, mine in (("shuffle", key.shuffle), ("window_bytes", key.window_bytes)):
        if name in state and state[name] != mine:
            raise UsageError(f"the checkpoint was saved with {name}={state[name]!r}, this dataset "
                             f"has {mine!r}: the epoch order would differ")
    consumed = whole_number(state["consumed"], "the state's consumed")
    if not 0 <= consumed <= key.num_items:
        raise UsageError(f"consumed={consumed} is outside 0..{key.num_items}")
    _check_order_version(state, key, consumed)
    return consumed


def _check_order_version(state: dict[str, Any], key: OrderKey, consumed: int) -> None:
    """A mid-epoch checkpoint of a shuffled epoch of an older order version cannot resume exactly."""
    version = int(state.get("order", 1))
    if key.shuffle and version != ORDER_VERSION and 0 < consumed < key.num_items:
        raise UsageError(f"the checkpoint was saved by a shardkit whose shuffled order (version {version}) "
                         f"differs from this one's (version {ORDER_VERSION}), {consumed} items into epoch "
                         f"{state['epoch']}: the rest of that epoch cannot be resumed exactly. Start the epoch "
                         f"over (ds.set_epoch({state['epoch']})) or go on with the next one "
                         f"(ds.set_epoch({int(state['epoch']) + 1})); checkpoints saved from now on resume exactly")
