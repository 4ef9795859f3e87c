"""``ShardDataset``: exact, deterministic batches from a shard set for torch training.

The dataset is the glue of the read stage's parts: :class:`~shardkit.dataset.options.ReadOptions`
(its checked arguments), :mod:`shardkit.dataset.order` (which items an epoch reads, in which order)
and :mod:`shardkit.dataset.plan` (which of them form a batch, per rank and worker),
:class:`~shardkit.dataset.cursor.EpochCursor` (the epoch, resume position and ``state_dict``),
:class:`~shardkit.dataset.assemble.reader.BatchReader` (the hot path: byte ranges read
through the shard set's :class:`~shardkit.storage.base.Storage` straight into the batch rows)
and :mod:`shardkit.dataset.labels` (the targets). See docs/reading.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset

from shardkit.dataset import plan
from shardkit.dataset.assemble.reader import BatchReader
from shardkit.dataset.cursor import STATE_FORMAT, EpochCursor, OrderKey, SharedInt
from shardkit.dataset.options import ON_ERROR, ReadOptions
from shardkit.dataset.recipe import Recipe, Weights, epoch_sampler
from shardkit.dataset.targets import dataset_classes
from shardkit.dataset.topology import detect_topology
from shardkit.errors import UsageError
from shardkit.read.columns import Where
from shardkit.read.shardset import ShardSet
from shardkit.storage import obstore as locate
from shardkit.storage.cache import CachedStorage, ShardCache
from shardkit.storage.cache.worker import private_cache
from shardkit.storage.location import is_url

log = logging.getLogger(__name__)

#: an iteration over a local set with at least this share of its pages in the page cache (at its start)
#: does not read ahead (``LocalStorage`` ``"auto"``): hints would only cost CPU
WARM_SHARE = 0.98

__all__ = ["ON_ERROR", "STATE_FORMAT", "ReadOptions", "ShardDataset", "SharedInt"]


def _option(name: str) -> property:
    return property(lambda self: getattr(self.options, name), doc=f"The ``{name}`` of :attr:`options`.")


def _open_set(source: Any, storage_options: dict[str, Any] | None, search_path: Any, cache_dir: Any,
              cache_bytes: Any) -> ShardSet:
    """The :class:`ShardSet` of a ``ShardDataset(source, ...)``; a list of sets is pointed to :class:`Mixture`."""
    _check_source(source)
    storage_options = locate.cache_options(source, storage_options, cache_dir, cache_bytes)
    if isinstance(source, ShardSet):
        return source
    return ShardSet.open(source, storage_options=storage_options, search_path=search_path)


class ShardDataset(IterableDataset):
    """Batches of int16 audio and multi-hot labels from a shard set, split exactly across ranks.

    Use with ``DataLoader(ds, batch_size=None, num_workers=K, pin_memory=True)``: the dataset
    batches itself. Every batch is a dict:

    - ``audio`` torch.int16 (B, T) for mono sets, (B, C, T) otherwise; T = ``crop_seconds`` ×
      sample rate frames (or the longest segment when ``crop_seconds`` is None, segments mode).
      Short samples are zero-padded at the end.
    - mel-u8 sets (``pack --format mel-u8``) yield ``mel`` torch.uint8 (B, n_mels, T) instead, T =
      ``1 + crop_samples // hop_length`` spectrogram frames (random crops in frames), and ``mel_range``
      float32 (B, 2): each row's dB range ``[q_lo, q_hi]``; dequantise on the device with
      :class:`shardkit.device.DevicePipeline` (or :func:`shardkit.device.dequantize`). Padding frames are 0.
    - ``labels`` torch.float32 (B, n_classes): 1.0 for the primary label, ``secondary_weight`` for
      secondary labels; classes are ``classes`` if given, else the shard set's vocabulary.
    - ``valid`` torch.bool (B,): False for padding entries (``partial="pad"``) and skipped reads.
    - ``keys`` list[str] (B), ``index`` torch.int64 (B,): sample rows of the :class:`ShardSet`.
    - ``meta`` list[dict] (B): the msgpack metadata, only with ``with_metadata=True``.
    - ``source`` list[str] (B), ``start_seconds`` and ``end_seconds`` torch.float64 (B,): the row's source
      recording and where its crop starts in it (seconds), and that start + ``crop_seconds``.
    - with ``targets="NAME"`` (a label layer of the set, docs/labels.md): ``targets`` torch.float32
      (B, n_classes) in the dataset's class order — a crop of a recording gets the windows it overlaps
      combined by ``targets_reduce`` (``"mean"``: weighted by overlap in seconds; ``"max"``) — and
      ``targets_mask`` torch.bool (B,): False (targets 0) where the layer has no row for the item.
      Without ``classes``, the classes are the vocabulary extended by the layer's other class names.

    ``crops="grid"`` (with ``crop_seconds`` and ``shuffle=False``): the items are every consecutive
    ``crop_seconds`` window of every sample, in order (evaluation and pseudo-labelling; ``tail="pad"``
    zero-pads a last partial window, ``"drop"`` leaves it out); :func:`shardkit.labels.row_ids` names
    them in the BirdCLEF submission format.

    The order of an epoch depends on (seed, epoch) only, never on the number of ranks or workers;
    call :meth:`set_epoch` before each epoch (it reaches persistent workers). ``len(ds)`` is the
    exact number of batches this rank yields per epoch. ``partial`` decides the last, incomplete
    global step: ``"pad"`` (default when shuffling; every rank the same count), ``"drop"``, or
    ``"keep"`` (default otherwise; every item exactly once, a rank may have one extra short batch).
    ``rank``/``world_size`` default to :func:`detect_topology` at construction. ``read_threads``: threads
    that copy a batch's items out of the page cache (default 2 in the training process on a 2+-core
    machine, 1 in DataLoader workers); the batch is the same for any number. ``read_ahead``: hint the
    storage a shuffle window ahead which members this process reads next (:meth:`Storage.prefetch`;
    an object store fetches them in large checked windows, a local folder asks the kernel to read them
    ahead); the batches are the same either way. None (default): yes — object stores fetch windows,
    local folders read ahead only what is not in the page cache already (``LocalStorage`` ``"auto"``:
    cold shuffled reads at the disk's sequential speed, warm ones unchanged; docs/benchmarks.md);
    False turns it off; True on a ``readahead="off"`` storage turns ``fadvise`` on. ``source`` may be
    an object-store URL (``s3://bucket/prefix/``, ``gs://…``, ``az://…``, ``http(s)://…``) with ``storage_options`` for
    obstore (docs/reading.md, "Shard sets on object storage"); ``cache_dir`` keeps its downloaded shards
    on local disk for every process (DataLoader workers, later epochs and runs), at most ``cache_bytes``;
    without it, the DataLoader workers of a set on object storage share a private shard cache in
    ``$TMPDIR`` (each shard fetched once per process, not once per worker; removed at exit;
    :mod:`shardkit.storage.cache.worker`), which ``cache_dir=False`` turns off.
    ``search_path``: folders holding the ancestors of a set made by ``shardkit update`` (docs/versions.md;
    also ``$SHARDKIT_SEARCH_PATH``).
    ``verify_crc``: check each data member read against the CRC-32 in its index (:mod:`shardkit.dataset.crc`:
    members read whole are checked on every read, a member read in crops is read whole and checked once per
    process); a mismatch is a :class:`ShardReadError` naming shard and sample, under ``on_error`` like any read
    error (cost: docs/reading.md).

    Recipes (docs/recipes.md): ``keys`` (sample keys, or a file of one per line) and ``where`` (a function
    of the set's columns, :func:`shardkit.sample_columns`, returning a bool mask; or an expression over them as
    text, ``"rating >= 3"``: :mod:`shardkit.read.where`) read a subset, with
    order, split, resume and DDP as for a whole set. ``weights`` (``"balanced"``, a power p: weight ∝
    count(primary_label)^-p, per-sample weights, or a function of the columns) draws
    ``samples_per_epoch`` items per epoch (default: the subset's items), with replacement where the
    weights demand it, window by window (:mod:`shardkit.dataset.order.sampling`); ``samples_per_epoch``
    alone draws that many uniformly.

    The arguments are checked into :attr:`options` (:class:`ReadOptions`) and also readable as
    attributes (``ds.batch_size``, ...). :attr:`shard_set` is the :class:`ShardSet` read,
    :attr:`cursor` the :class:`~shardkit.dataset.cursor.EpochCursor`, :attr:`reader` the
    :class:`~shardkit.dataset.assemble.reader.BatchReader`.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | ShardSet,
        *,
        batch_size: int = 64,
        crop_seconds: float | None = None,
        crops_per_recording: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        shuffle_window: int | str = "256MB",
        partial: str | None = None,
        secondary_weight: float = 1.0,
        classes: Sequence[str] | None = None,
        with_metadata: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        on_error: str = "raise",
        read_threads: int | None = None,
        read_ahead: bool | None = None,
        storage_options: dict[str, Any] | None = None,
        search_path: Sequence[str | os.PathLike[str]] | None = None,
        verify_crc: bool = False,
        cache_dir: str | os.PathLike[str] | bool | None = None,
        cache_bytes: int | str | None = None,
        # recipes (docs/recipes.md)
        keys: Iterable[str] | str | os.PathLike[str] | None = None,
        where: Where | None = None,
        weights: Weights | None = None,
        samples_per_epoch: int | None = None,
        # label layers and evaluation windows (docs/labels.md)
        crops: str = "random",
        tail: str = "pad",
        targets: str | None = None,
        targets_reduce: str = "mean",
    ) -> None:
        super().__init__()
        opts = ReadOptions(batch_size=batch_size, crop_seconds=crop_seconds,
                           crops_per_recording=crops_per_recording, shuffle=shuffle, seed=seed,
                           shuffle_window=shuffle_window, partial=partial, secondary_weight=secondary_weight,
                           classes=None if classes is None else tuple(classes), with_metadata=with_metadata,
                           on_error=on_error, read_threads=read_threads, read_ahead=read_ahead,
                           verify_crc=verify_crc, crops=crops, tail=tail, targets=targets,
                           targets_reduce=targets_reduce)
        self.shard_set = ss = self._open(source, storage_options, search_path, cache_dir, cache_bytes)
        opts.check_layout(ss.mode, ss.root)
        if opts.read_ahead and not ss.storage.capabilities.reads_ahead:
            ss.storage.set_readahead("fadvise")  # read_ahead=True asked for it on a local folder
        #: the checked arguments (:class:`ReadOptions`)
        self.options = opts
        topo = detect_topology(rank, world_size)
        self.rank, self.world_size = topo.rank, topo.world_size
        self.reader, self.sampler = self._reading(ss, opts, Recipe(keys, where, weights, samples_per_epoch))
        key = OrderKey(seed=opts.seed, version_id=ss.version_id, num_items=self.sampler.num_items,
                       shuffle=opts.shuffle, window_bytes=opts.window_bytes, root=ss.root, recipe=self.sampler.recipe())
        self.cursor = EpochCursor(key, self.world_size * opts.batch_size)
        self._order_cache: tuple[int, np.ndarray, np.ndarray] | None = None
        if len(self) == 0:
            log.warning("%s: rank %d of %d gets no batch (%d items, batch_size %d, partial=%r)",
                        ss.root, self.rank, self.world_size, self.num_items, self.batch_size, opts.partial)
        _warn_about_the_set(ss, opts, self.reader.crop_frames)

    def _reading(self, ss: ShardSet, opts: ReadOptions, recipe: Recipe) -> tuple[BatchReader, Any]:
        """Sets :attr:`classes` (with a label layer's: ``targets=``); returns the
        :class:`~shardkit.dataset.assemble.reader.BatchReader` and the sampler of which items each epoch reads
        (:class:`~shardkit.dataset.order.sampling.EpochSampler`; with ``crops="grid"`` every window of every
        sample: :class:`~shardkit.dataset.order.grid.GridOrder`)."""
        self.classes, class_of, targets = dataset_classes(ss, opts.targets, opts.classes, opts.targets_reduce,
                                                          opts.crop_seconds)
        reader = BatchReader(ss, opts, len(self.classes), class_of, targets)
        return reader, epoch_sampler(ss, opts, recipe, None if reader.grid is None else reader.grid[0])

    batch_size = _option("batch_size")
    crop_seconds = _option("crop_seconds")
    crops_per_recording = _option("crops_per_recording")
    shuffle = _option("shuffle")
    seed = _option("seed")
    window_bytes = _option("window_bytes")
    partial = _option("partial")
    secondary_weight = _option("secondary_weight")
    with_metadata = _option("with_metadata")
    on_error = _option("on_error")
    read_threads = _option("read_threads")
    read_ahead = _option("read_ahead")
    verify_crc = _option("verify_crc")

    @property
    def crop_frames(self) -> int:
        """Stored frames per batch row (T)."""
        return self.reader.crop_frames

    @property
    def stats(self) -> dict[str, int]:
        """Batches, items and skipped samples read by this process (with ``verify_crc``, also
        ``crc_checked``/``crc_failed``: members checked and failed)."""
        return self.reader.stats

    # -- epoch and plan --------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration uses (also in persistent workers).

        A position restored by :meth:`load_state_dict` is kept for its own epoch and dropped for any
        other one.
        """
        self.cursor.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.cursor.epoch

    @property
    def num_items(self) -> int:
        """Items per epoch over all ranks: samples (of the subset) × crops_per_recording, or
        ``samples_per_epoch``."""
        return self.cursor.key.num_items

    def plan(self, start: int = 0) -> plan.RankPlan:
        """This rank's batches over the epoch's items ``start:`` (see :func:`plan.plan_rank`)."""
        return plan.plan_rank(self.num_items, world_size=self.world_size, rank=self.rank,
                              batch_size=self.batch_size, partial=self.partial, start=start)

    def order(self, epoch: int) -> np.ndarray:
        """The global order of ``epoch``: int64 (num_items,) codes, ``item = code % (samples × crops)``
        with ``item = sample × crops + crop_no`` (the code's quotient numbers repeated draws of an item;
        0 unless weights draw it more than once)."""
        return self._epoch(epoch)[1]

    def _epoch(self, epoch: int) -> tuple[int, np.ndarray, np.ndarray]:
        """(epoch, order, window bounds in the order) of ``epoch``, computed once per epoch."""
        if self._order_cache is None or self._order_cache[0] != epoch:
            self._order_cache = (epoch, *self.sampler.order(epoch))
        return self._order_cache

    def __len__(self) -> int:
        """Batches this rank yields in the next iteration (over all of its DataLoader workers):
        the whole epoch, or its remainder after :meth:`load_state_dict`."""
        return len(self.plan(self.cursor.pending_start()))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        topo = detect_topology(self.rank, self.world_size)
        epoch, start = self.cursor.begin_iteration()
        return self.cursor.counted(self._iter_batches(epoch, start, topo.worker, topo.num_workers))

    def _iter_batches(self, epoch: int, start: int, worker: int, num_workers: int
                      ) -> Iterator[dict[str, Any]]:
        """Batches of this rank for ``worker`` of ``num_workers``, over ``G[start:]`` of ``epoch``."""
        rank_plan = self.plan(start)
        order = self.order(epoch)
        in_worker = torch.utils.data.get_worker_info() is not None
        if in_worker and num_workers > 1:
            self._share_downloads()
        batches = rank_plan.worker_batches(worker, num_workers)
        ahead = self._read_ahead(epoch, rank_plan, batches) if self._reads_ahead() else None
        n_items, drawn = self.sampler.set_items, self.sampler.drawn
        for t in batches:
            positions, valid = rank_plan.positions(t)
            if ahead is not None:
                ahead.before(positions)
            draws, items = np.divmod(order[positions], max(n_items, 1))
            yield self.reader.read(items, valid, epoch, in_worker=in_worker, draws=draws if drawn else None)

    def _open(self, source: Any, storage_options: dict[str, Any] | None, search_path: Any, cache_dir: Any,
              cache_bytes: Any) -> ShardSet:
        """The set read (:func:`_open_set`); sets :attr:`_worker_cache`, the shard cache this process's DataLoader
        workers share (:mod:`shardkit.storage.cache.worker`; None with ``cache_dir=False`` or a ``cache_dir``)."""
        ss = _open_set(source, storage_options, search_path, None if cache_dir is False else cache_dir, cache_bytes)
        self._worker_cache = None if cache_dir is False else _worker_cache(self, ss)
        return ss

    def _share_downloads(self) -> None:
        """In one of several DataLoader workers: read whole shards through the private cache the workers share
        (one download per shard for all of them; each worker's windows would span the others' members)."""
        ss, cache = self.shard_set, self._worker_cache
        if cache is None or isinstance(ss.storage, CachedStorage):
            return
        shards = {e.name: (e.bytes, e.sha256) for e in ss.manifest.shards}
        ss.use_storage(CachedStorage(ss.storage, cache, shards))

    def _reads_ahead(self) -> bool:
        """``read_ahead``, or when None whether the storage reads ahead (object stores do; a local
        folder does by default, ``"auto"``: not in an iteration that starts with at least
        :data:`WARM_SHARE` of the set in the page cache, and otherwise hinting only the ranges not
        cached, so warm reads pay one ``mincore`` per epoch)."""
        if self.options.read_ahead is not None:
            return self.options.read_ahead
        storage = self.shard_set.storage
        if not storage.capabilities.reads_ahead:
            return False
        try:
            share = storage.resident_share(self.shard_set.shard_names)
        except OSError:
            share = None  # the reads report it
        return share is None or share < WARM_SHARE

    def _read_ahead(self, epoch: int, rank_plan: plan.RankPlan, batches: range) -> Any:
        """The :class:`~shardkit.dataset.assemble.readahead.ReadAhead` of this process's ``batches`` of ``epoch``."""
        _, order, bounds = self._epoch(epoch)
        q = np.concatenate([np.zeros(0, np.int64)] + [np.arange(q0, q0 + n, dtype=np.int64)
                                                      for q0, n in map(rank_plan.batch, batches)])
        positions = rank_plan.start + q[q < rank_plan.remaining]  # padding re-reads the start: hinted there
        return self.reader.read_ahead(order % max(self.sampler.set_items, 1), bounds, positions)

    # -- checkpoint state --------------------------------------------------------------------------

    def state_dict(self, batches_done: int | None = None) -> dict[str, Any]:
        """The position in the epoch, for a checkpoint: small (a few ints), independent of W and K.

        ``batches_done``: the batches this rank's training loop has taken from the DataLoader in the
        current epoch (since the last ``set_epoch`` or restore). The loader yields a rank's batches
        in order 0, 1, 2, … whatever its ``num_workers``, so the loop knows this number. Every rank
        has taken the same number in a synchronous DDP step, so the global position is
        ``consumed = start + batches_done × world_size × batch_size`` (capped at the epoch's items).
        Default: the batches this process's own iterator has yielded (right with ``num_workers=0``;
        with DataLoader workers pass the count, the main process does not see the workers' reads).
        """
        return self.cursor.state_dict(batches_done)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (:meth:`state_dict`): the next iteration of ``state["epoch"]``
        starts at item ``consumed`` of its order ``G``; later epochs start at 0 again.

        Costs no reads. The world size, number of workers and batch size may differ from the run that
        saved it: the remaining items ``G[consumed:]`` are split among the ranks as usual. Reaches
        DataLoader workers, persistent ones too (call it before the next iteration starts).
        Raises :class:`UsageError` when ``state`` was saved with another seed, shard set, shuffle or
        number of items.
        """
        self.cursor.restore(state)

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the shard files this process opened."""
        self.shard_set.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_order_cache"] = None
        return state

    def __repr__(self) -> str:
        return (f"ShardDataset({str(self.shard_set.root)!r}, items={self.num_items}, "
                f"batch_size={self.batch_size}, rank={self.rank}/{self.world_size}, "
                f"shuffle={self.shuffle}, partial={self.partial!r}, batches={len(self)})")


def _worker_cache(owner: object, ss: ShardSet) -> ShardCache | None:
    """A private shard cache for the DataLoader workers of a set read from object storage with no shard cache
    of its own (removed when ``owner`` goes); None for any other set."""
    if ss.root.is_local:
        return None
    from shardkit.storage.object import ObjectStorage

    if type(ss.storage) is not ObjectStorage:
        return None
    try:
        return private_cache(owner)
    except (OSError, UsageError) as exc:  # not the set's fault: the workers fetch their own windows
        log.warning("%s: no private shard cache for DataLoader workers (%s); each worker fetches its own windows. "
                    "Set TMPDIR to a writable local folder, or pass cache_dir=FOLDER", ss.root, exc)
        return None


def _check_source(source: object) -> None:
    """:class:`UsageError` unless ``source`` names one shard set (several sets, a list, a number)."""
    one = isinstance(source, ShardSet) or (
        isinstance(source, str | os.PathLike) and not ("," in os.fspath(source) and not is_url(source)
                                                     and not os.path.exists(source)))
    if one:
        return
    raise UsageError(f"ShardDataset reads one shard set (a folder, its manifest.json or an object-store URL), got "
                     f"{source!r:.200}; to read several at once, mix them: shardkit.Mixture([ShardDataset(a, ...), "
                     f"ShardDataset(b, ...)], proportions=[...]) (docs/recipes.md)")


def _warn_about_the_set(ss: ShardSet, opts: ReadOptions, crop_frames: int) -> None:
    """Warn (once, here) about a set that trains silently wrong: a pack stopped at its budget, or crops
    longer than every sample (every row zero-padded)."""
    if not ss.manifest.complete:
        log.warning("%s is incomplete: its pack stopped at its budget, so it holds only part of the sources "
                    "(%d samples). Finish it by running the same 'shardkit pack' with a larger --budget",
                    ss.root, len(ss))
    longest = int(ss.frames.max()) if len(ss) else 0
    if opts.crop_seconds is not None and len(ss) and crop_frames > longest:
        seconds = longest * ss.seconds_per_frame
        log.warning("%s: crop_seconds=%g is longer than every sample (the longest is %.3g s): each row is a whole "
                    "sample zero-padded at the end (valid stays True); pass crop_seconds <= %.3g",
                    ss.root, opts.crop_seconds, seconds, seconds)
