"""Read-ahead hints of a batch reader: the storage is told which members this process reads next, a
shuffle window ahead of use (docs/reading.md, "Read-ahead"). Hints only: batches are the same without them."""

from __future__ import annotations

import numpy as np

from shardkit.dataset.order.shuffle import window_extents, window_items
from shardkit.read.shardset import ShardSet
from shardkit.storage.base import Extent

#: a member is hinted for read-ahead only if the epoch's items read at least this share of it (random
#: 5 s crops of long recordings read a few % of each: reading those whole costs more than the crops)
READAHEAD_MIN_USE = 0.5
#: windows hinted beyond the one the next batch comes from
READAHEAD_LEAD = 1


class ReadAhead:
    """Tells the storage which members this process reads next, a shuffle window ahead of use.

    ``positions`` int64: every position of ``G`` (``order``) this process reads this iteration (its
    batches: rank and DataLoader worker), ``bounds`` the windows
    (:func:`~shardkit.dataset.order.shuffle.window_bounds`). Before a batch, :meth:`before` hints the
    windows it touches and :data:`READAHEAD_LEAD` more, each once: one :meth:`Storage.prefetch` call per
    shard with the members (sorted by offset) that this process's items of that window read
    (:func:`~shardkit.dataset.order.shuffle.window_extents`). Hints only: batches are the same without them.
    """

    def __init__(self, ss: ShardSet, order: np.ndarray, bounds: np.ndarray, positions: np.ndarray,
                 crops: int, read_bytes: np.ndarray | None) -> None:
        self.ss, self.order, self.bounds, self.crops = ss, order, bounds, crops
        self.read_bytes = read_bytes
        self.windows = window_items(positions, bounds)
        self.hinted: set[int] = set()

    def before(self, positions: np.ndarray) -> None:
        """Hint the windows of a batch at ``positions`` (int64, into ``G``) and the next ones, once each."""
        if not len(positions) or not self.windows:
            return
        win = np.searchsorted(self.bounds, positions, side="right") - 1
        last = min(int(win.max()) + READAHEAD_LEAD, len(self.windows) - 1)
        for w in range(int(win.min()), last + 1):
            if w not in self.hinted:
                self.hinted.add(w)
                self.hint(w)

    def hint(self, w: int) -> None:
        """One :meth:`Storage.prefetch` per shard for this process's members of window ``w``."""
        ss = self.ss
        items = self.order[self.windows[w]]
        for shard, rows in window_extents(items, self.crops, ss.shard_id, ss.wav_offset, ss.sample_bytes,
                                          read_bytes=self.read_bytes, min_use=READAHEAD_MIN_USE):
            extents = list(map(Extent, ss.wav_offset[rows].tolist(), ss.sample_bytes[rows].tolist(),
                               ss.wav_crc32[rows].tolist()))
            ss.storage.prefetch(ss.shard_names[shard], extents)
