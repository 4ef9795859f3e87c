"""``Mixture``: several shard sets (each a configured :class:`~shardkit.ShardDataset`) read as one torch
dataset, in chosen proportions, with the same exact epochs, splits and resume as one set.

Each epoch, part p contributes ``split_counts(proportions, samples_per_epoch)[p]`` items, drawn by
its own recipe (subset, weights; :meth:`EpochSampler.order <shardkit.dataset.order.sampling.EpochSampler.order>`
with that many items: window by window, as its own shuffle), and the parts' items are interleaved
evenly (:func:`~shardkit.dataset.order.sampling.interleave`). A batch reads each part's items into its
rows of one set of tensors (parts grouped within the batch) through that part's
:class:`~shardkit.dataset.assemble.reader.BatchReader`, its targets in the joined class vocabulary.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset

from shardkit.dataset import plan
from shardkit.dataset.assemble.reader import BatchReader
from shardkit.dataset.cursor import EpochCursor, OrderKey
from shardkit.dataset.dataset import ShardDataset
from shardkit.dataset.order.sampling import interleave, split_counts
from shardkit.dataset.targets import NoTargets
from shardkit.dataset.topology import detect_topology
from shardkit.errors import UsageError

log = logging.getLogger(__name__)


def _codec_of(ds: ShardDataset) -> tuple[Any, ...]:
    ss = ds.shard_set
    return (ss.codec.codec_id, ss.sample_rate, ss.channels, ss.mel)


def check_parts(parts: Sequence[ShardDataset]) -> None:
    """Refuse parts that cannot share a batch, naming them: not a :class:`ShardDataset`, not shuffled,
    another codec / sample rate / channels / mel front end, another crop length."""
    if not parts:
        raise UsageError("Mixture needs at least one part: Mixture([ShardDataset(a, ...), ShardDataset(b, ...)])")
    for i, part in enumerate(parts):
        if not isinstance(part, ShardDataset):
            raise UsageError(f"Mixture part {i} is a {type(part).__name__}, not a ShardDataset: pass "
                             "Mixture([ShardDataset(path, ...), ...])")
        if not part.shuffle:
            raise UsageError(f"Mixture part {i} ({part.shard_set.root}) has shuffle=False; a mixture draws its "
                             "parts' items at random: build the parts with shuffle=True")
    first = parts[0]
    for i, part in enumerate(parts[1:], start=1):
        for what, a, b in (("codec, sample rate, channels, mel settings", _codec_of(first), _codec_of(part)),
                           ("crop length in frames", first.crop_frames, part.crop_frames)):
            if a != b:
                raise UsageError(f"Mixture parts 0 ({first.shard_set.root}) and {i} ({part.shard_set.root}) differ "
                                 f"in {what}: {a} vs {b}; a batch holds one layout: pack them alike, and give every "
                                 "part the same crop_seconds")


def joined_classes(parts: Sequence[ShardDataset], classes: Sequence[str] | None) -> tuple[list[str], list[np.ndarray]]:
    """The mixture's classes (``classes``, else the sorted union of the parts' class names) and, per
    part, the joined class of each label of its vocabulary (int64, −1: not a class)."""
    names = list(classes) if classes is not None else sorted({c for p in parts for c in p.classes})
    if len(set(names)) != len(names):
        raise UsageError("classes has duplicate names")
    index = {c: i for i, c in enumerate(names)}
    maps = []
    for part in parts:
        to_joined = np.asarray([index.get(c, -1) for c in part.classes] + [-1], dtype=np.int64)
        maps.append(to_joined[part.reader.class_of])  # a part's -1 (not one of its classes) stays -1
    return names, maps


def joined_targets(parts: Sequence[ShardDataset], classes: Sequence[str]) -> list[Any]:
    """Per part, its label layer's targets in the joined ``classes`` (each of the part's classes to the
    joined class of that name; joined classes the part lacks 0): a
    :class:`~shardkit.dataset.targets.Targets`, or for a part without ``targets=`` a
    :class:`~shardkit.dataset.targets.NoTargets` (every row masked). All None when no part reads targets."""
    if all(p.reader.targets is None for p in parts):
        return [None] * len(parts)
    index = {c: i for i, c in enumerate(classes)}
    out: list[Any] = []
    for i, part in enumerate(parts):
        if part.reader.targets is None:
            log.info("Mixture part %d (%s) has no targets=: its rows get targets 0 with targets_mask False", i,
                     part.shard_set.root)
            out.append(NoTargets(len(classes)))
            continue
        class_to = np.asarray([index.get(c, -1) for c in part.classes], dtype=np.int64)
        out.append(part.reader.targets.joined(class_to, len(classes)))
    return out


class Mixture(IterableDataset):
    """Several :class:`ShardDataset` parts as one dataset, each contributing its proportion of every epoch.

    ``parts``: datasets configured as usual (subset, weights, crops; ``shuffle=True``), of one codec,
    sample rate, channel count and crop length (others are refused by name). ``proportions``: each
    part's share of an epoch (default: by the parts' epoch sizes); part p contributes exactly
    ``split_counts(proportions, samples_per_epoch)[p]`` items (rounding: largest remainders).
    ``samples_per_epoch``: items per epoch (default: the sum of the parts' epochs). ``seed``: the
    interleaving (each part draws with its own seed). ``classes``: the target classes (default: the
    union of the parts' class names, sorted; labels land by name). ``batch_size`` (default: the
    parts' own, which must agree), ``partial`` (``"pad"`` or ``"drop"``), ``rank``/``world_size`` as
    for :class:`ShardDataset`.

    Batches are those of :class:`ShardDataset` (``audio`` or ``mel``, ``labels`` (B, len(classes)),
    ``valid``, ``keys``, ``index``: rows of each item's own part's set; with parts built with
    ``targets="NAME"``, ``targets`` float32 (B, len(classes)) and ``targets_mask`` bool (B,): each item's
    row of its own part's layer, the layer's classes moved into ``classes`` by name — a class the part
    lacks 0, a part's class the mixture lacks dropped — and False where that layer has no row; a part
    without ``targets=`` gives its rows 0 with ``targets_mask`` False) plus ``part`` int64 (B,): the
    part each item came from (:attr:`part_names`). ``part`` rather than ``source``: ``source`` is
    already the source recording's column. Within a batch, items are grouped by part. ``len``,
    :meth:`set_epoch`, :meth:`state_dict` / :meth:`load_state_dict` work as for one set.
    """

    def __init__(self, parts: Sequence[ShardDataset], *, proportions: Sequence[float] | None = None,
                 samples_per_epoch: int | None = None, seed: int = 0, classes: Sequence[str] | None = None,
                 batch_size: int | None = None, partial: str = "pad", rank: int | None = None,
                 world_size: int | None = None) -> None:
        super().__init__()
        parts = list(parts) if not isinstance(parts, ShardDataset) else [parts]
        check_parts(parts)
        self.parts = parts
        self.part_names = [str(p.shard_set.root) for p in parts]
        self.batch_size = self._batch_size(batch_size)
        if partial not in ("pad", "drop"):
            raise UsageError(f"Mixture partial must be 'pad' or 'drop' (training), got {partial!r}")
        self.partial, self.seed = partial, int(seed)
        self.proportions = self._proportions(proportions)
        m = sum(p.num_items for p in parts) if samples_per_epoch is None else samples_per_epoch
        if isinstance(m, bool) or int(m) < 1:
            raise UsageError(f"samples_per_epoch must be a positive integer, got {samples_per_epoch!r}")
        self.counts = split_counts(self.proportions, int(m))
        self.classes, maps = joined_classes(parts, classes)
        self.readers = [BatchReader(p.shard_set, p.options, len(self.classes), cmap, targets)
                        for p, cmap, targets in zip(parts, maps, joined_targets(parts, self.classes))]
        topo = detect_topology(rank, world_size)
        self.rank, self.world_size = topo.rank, topo.world_size
        key = OrderKey(seed=self.seed, version_id="+".join(p.shard_set.version_id for p in parts), num_items=int(m),
                       shuffle=True, window_bytes=0, root=parts[0].shard_set.root, recipe=self._recipe())
        self.cursor = EpochCursor(key, self.world_size * self.batch_size)
        self._order_cache: tuple[int, np.ndarray, np.ndarray, np.ndarray, list[Any]] | None = None

    def _batch_size(self, batch_size: int | None) -> int:
        if batch_size is None:
            sizes = {p.batch_size for p in self.parts}
            if len(sizes) > 1:
                raise UsageError(f"the parts have batch sizes {sorted(sizes)}: pass Mixture(..., batch_size=N)")
            return sizes.pop()
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
        return int(batch_size)

    def _proportions(self, proportions: Sequence[float] | None) -> list[float]:
        if proportions is None:
            return [float(p.num_items) for p in self.parts]
        props = [float(x) for x in proportions]
        if len(props) != len(self.parts):
            raise UsageError(f"{len(props)} proportions for {len(self.parts)} parts; give one per part")
        if any(not np.isfinite(x) or x < 0 for x in props) or not sum(props) > 0:
            raise UsageError(f"proportions must be finite, >= 0 and not all 0, got {props}")
        return props

    def _recipe(self) -> str:
        """What chose the mixture's items: each part's recipe, seed, window and crops, and the counts."""
        h = hashlib.blake2b(digest_size=12)
        for p in self.parts:
            h.update(f"{p.shard_set.version_id}|{p.sampler.recipe()}|{p.seed}|{p.window_bytes}|"
                     f"{p.crops_per_recording}|".encode())
        h.update(repr(self.counts).encode())
        return h.hexdigest()

    # -- epoch, plan, checkpoint state: ShardDataset's own, over this mixture's cursor and sizes ---------

    set_epoch = ShardDataset.set_epoch
    epoch = ShardDataset.epoch
    num_items = ShardDataset.num_items
    plan = ShardDataset.plan
    __len__ = ShardDataset.__len__
    __iter__ = ShardDataset.__iter__
    state_dict = ShardDataset.state_dict
    load_state_dict = ShardDataset.load_state_dict

    def order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The order of ``epoch``: (part int64 (M,), code int64 (M,) in that part's order codes,
        ``item = code % part items``)."""
        _, part_of, _, codes, _ = self._epoch(epoch)
        return part_of, codes

    def _epoch(self, epoch: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, list[Any]]:
        """(epoch, part per slot, index into the part's own order per slot, code per slot, each part's
        (order, window bounds)), computed once per epoch."""
        if self._order_cache is None or self._order_cache[0] != epoch:
            part_of, k = interleave(self.counts, seed=self.seed, epoch=epoch)
            codes = np.zeros(len(part_of), dtype=np.int64)
            orders: list[Any] = []
            for p, (part, n) in enumerate(zip(self.parts, self.counts)):
                orders.append(part.sampler.order(epoch, n) if n else None)
                if n:
                    codes[part_of == p] = orders[p][0][k[part_of == p]]
            self._order_cache = (epoch, part_of, k, codes, orders)
        return self._order_cache

    def _iter_batches(self, epoch: int, start: int, worker: int, num_workers: int) -> Iterator[dict[str, Any]]:
        rank_plan = self.plan(start)
        _, part_of, k, codes, _ = self._epoch(epoch)
        in_worker = torch.utils.data.get_worker_info() is not None
        if in_worker and num_workers > 1:
            for part in self.parts:
                part._share_downloads()  # sets on object storage: one download per shard for all workers
        batches = rank_plan.worker_batches(worker, num_workers)
        aheads = self._read_aheads(epoch, rank_plan, batches)
        for t in batches:
            positions, valid = rank_plan.positions(t)
            for p, ahead in aheads.items():
                ahead.before(k[positions][part_of[positions] == p])
            by_part = np.argsort(part_of[positions], kind="stable")
            yield self._read(part_of[positions][by_part], codes[positions][by_part], valid[by_part], epoch,
                             in_worker)

    def _read_aheads(self, epoch: int, rank_plan: plan.RankPlan, batches: range) -> dict[int, Any]:
        """Per part that reads ahead (see ``ShardDataset(read_ahead=)``), the
        :class:`~shardkit.dataset.assemble.readahead.ReadAhead` of this process's items of it, in the part's own
        order."""
        _, part_of, k, _, orders = self._epoch(epoch)
        wanted = [p for p, part in enumerate(self.parts) if self.counts[p] and part._reads_ahead()]
        if not wanted:
            return {}
        q = np.concatenate([np.zeros(0, np.int64)] + [np.arange(q0, q0 + n, dtype=np.int64)
                                                      for q0, n in map(rank_plan.batch, batches)])
        slots = rank_plan.start + q[q < rank_plan.remaining]
        out = {}
        for p in wanted:
            order, bounds = orders[p]
            mine = k[slots][part_of[slots] == p]
            out[p] = self.readers[p].read_ahead(order % max(self.parts[p].sampler.set_items, 1), bounds, mine)
        return out

    def _read(self, part: np.ndarray, codes: np.ndarray, valid: np.ndarray, epoch: int, in_worker: bool
              ) -> dict[str, Any]:
        """One batch: each part's items (``part`` ascending) read into its rows of shared tensors."""
        *tensors, part_t = self.readers[0].new_batch(len(part), in_worker, extra=[((), np.int64)])
        keys: list[str] = []
        sources: list[str] = []
        metas: list[dict[str, Any]] = []
        for p in np.unique(part).tolist():
            a, b = np.searchsorted(part, [p, p + 1])
            n_items = max(self.parts[p].sampler.set_items, 1)
            draws, items = np.divmod(codes[a:b], n_items)
            got = self.readers[p].read_rows([x[a:b] for x in tensors], items, valid[a:b], epoch,
                                            in_worker=in_worker, draws=draws)
            keys += got["keys"]
            sources += got["source"]
            metas += got.get("meta", [{}] * (b - a))
        audio, labels, valid_t, index, *fields = tensors
        out: dict[str, Any] = {self.parts[0].shard_set.codec.batch_key: audio}
        n_codec = len(self.parts[0].shard_set.codec.batch_field_specs())
        out.update(zip(self.parts[0].shard_set.codec.batch_field_specs(), fields))
        out.update({"labels": labels, "valid": valid_t, "keys": keys, "index": index, "part": part_t,
                    "source": sources, "start_seconds": fields[n_codec], "end_seconds": fields[n_codec + 1]})
        if self.readers[0].targets is not None:
            out.update(targets=fields[n_codec + 2], targets_mask=fields[n_codec + 3])
        part_t.numpy()[:] = part
        if any(p.with_metadata for p in self.parts):
            out["meta"] = metas
        return out

    def close(self) -> None:
        for p in self.parts:
            p.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_order_cache"] = None
        return state

    def __repr__(self) -> str:
        return (f"Mixture({self.part_names!r}, counts={self.counts}, batch_size={self.batch_size}, "
                f"rank={self.rank}/{self.world_size}, batches={len(self)})")
