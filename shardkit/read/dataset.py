"""``ShardDataset``: exact, deterministic int16 batches from a shard set for torch training.

Each DataLoader worker reads whole batches: it computes every item's byte range from the index
columns, sorts the reads by (shard, offset) and ``os.preadv``-s the PCM straight into the rows of
one preallocated int16 array, which becomes the batch tensor without a copy (in DataLoader
workers that array lives in a reusable shared-memory slot, :mod:`shardkit.read.transport`). Which
items form a batch is decided by :mod:`shardkit.read.plan`; see docs/reading.md.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.context import get_spawning_popen
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset

from shardkit.errors import ShardReadError, UsageError
from shardkit.read import plan, transport
from shardkit.read import shardset as shardset_mod
from shardkit.read.env import detect_topology
from shardkit.read.shardset import ShardSet
from shardkit.units import parse_size

log = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")
#: Version of the :meth:`ShardDataset.state_dict` layout.
STATE_FORMAT = 1


class SharedEpoch:
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


_HAS_PREADV = hasattr(os, "preadv")
#: by default a batch gets a second reading thread only if each thread then copies at least this much
_THREAD_MIN_BYTES = 4 << 20


def _read_into(fd: int, view: memoryview, offset: int) -> int:
    """Read ``len(view)`` bytes at ``offset`` into ``view``; returns the bytes read (short at EOF)."""
    done = 0
    total = len(view)
    while done < total:
        if _HAS_PREADV:
            n = os.preadv(fd, [view[done:]], offset + done)
        else:  # pragma: no cover - platforms without preadv
            data = os.pread(fd, total - done, offset + done)
            n = len(data)
            view[done:done + n] = data
        if n <= 0:
            break
        done += n
    return done


def _read_rows(ss: ShardSet, flat: memoryview, row_bytes: int, samples: np.ndarray,
               reads: list[tuple[int, int, int, int]], fds: dict[int, int | OSError] | None
               ) -> list[tuple[int, ShardReadError, BaseException | None]]:
    """``preadv`` each ``(row j, shard, file offset, bytes)`` of ``reads`` into row j of ``flat``.

    Returns the reads that failed as ``(j, error naming shard and sample, cause)``; never raises, so
    that it can run in a reading thread. ``fds``: descriptors opened beforehand (threads), or None to
    open them here through the shard set.
    """
    errors = []
    fd_shard, fd = -1, -1  # reads are sorted by shard: a shard's descriptor is needed in one run
    for j, sh, off, nb in reads:
        row = j * row_bytes
        try:
            if sh != fd_shard:
                fd_shard = -1
                got_fd = ss.fd(sh) if fds is None else fds[sh]
                if isinstance(got_fd, OSError):
                    raise got_fd
                fd, fd_shard = got_fd, sh
            view = flat[row:row + nb]
            got = os.preadv(fd, [view], off) if _HAS_PREADV else 0  # one call, nearly always
            if got != nb:
                got = _read_into(fd, view, off)  # finish a short read, or find EOF
            if got != nb:
                raise ss.read_error(int(samples[j]), f"short read: {got} of {nb} bytes at offset {off}")
        except OSError as exc:
            err = exc if isinstance(exc, ShardReadError) else ss.read_error(int(samples[j]), f"read failed ({exc})")
            errors.append((j, err, None if err is exc else exc))
    return errors


def _new_batch(b: int, audio_shape: tuple[int, ...], n_classes: int, in_worker: bool,
               dtype: Any = np.int16, fields: Sequence[tuple[tuple[int, ...], Any]] = ()) -> list[torch.Tensor]:
    """Uninitialised [audio ``dtype`` (B, ...), labels float32 (B, n_classes), valid bool (B,),
    index int64 (B,)] tensors to fill, then one per ``fields`` entry (shape without B, dtype): the
    codec's own batch fields.

    In a DataLoader worker they live in one reusable shared-memory slot (:mod:`.transport`), so
    sending the batch to the main process copies nothing; elsewhere they are plain memory.
    """
    parts = [((b, *audio_shape), dtype), ((b, n_classes), np.float32), ((b,), np.bool_), ((b,), np.int64)]
    parts += [((b, *shape), field_dtype) for shape, field_dtype in fields]
    pool = transport.worker_pool() if in_worker else None
    tensors = pool.batch(parts) if pool is not None else None
    if tensors is None:
        tensors = [torch.from_numpy(np.empty(shape, dtype=dtype)) for shape, dtype in parts]
    return list(tensors)


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

    The order of an epoch depends on (seed, epoch) only, never on the number of ranks or workers;
    call :meth:`set_epoch` before each epoch (it reaches persistent workers). ``len(ds)`` is the
    exact number of batches this rank yields per epoch. ``partial`` decides the last, incomplete
    global step: ``"pad"`` (default when shuffling; every rank the same count), ``"drop"``, or
    ``"keep"`` (default otherwise; every item exactly once, a rank may have one extra short batch).
    ``rank``/``world_size`` default to :func:`detect_topology` at construction. ``read_threads``: threads
    that copy a batch's items out of the page cache (default 2 in the training process on a 2+-core
    machine, 1 in DataLoader workers); the batch is the same for any number.
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
    ) -> None:
        super().__init__()
        self.shards = source if isinstance(source, ShardSet) else ShardSet.open(source)
        ss = self.shards
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
        if on_error not in ON_ERROR:
            raise UsageError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        if read_threads is not None and (isinstance(read_threads, bool) or int(read_threads) < 1):
            raise UsageError(f"read_threads must be a positive integer or None, got {read_threads!r}")
        partial = partial if partial is not None else ("pad" if shuffle else "keep")
        if partial not in plan.PARTIAL_POLICIES:
            raise UsageError(f"partial must be one of {plan.PARTIAL_POLICIES}, got {partial!r}")
        if int(crops_per_recording) < 1:
            raise UsageError(f"crops_per_recording must be >= 1, got {crops_per_recording}")
        if ss.mode == "recordings" and crop_seconds is None:
            raise UsageError(f"{ss.root} holds whole recordings (layout mode 'recordings'): pass "
                             "crop_seconds=..., the length of the training crops in seconds")
        if ss.mode != "recordings" and int(crops_per_recording) != 1:
            raise UsageError(f"{ss.root} holds fixed segments (layout mode {ss.mode!r}): "
                             "crops_per_recording must be 1 (it is for recordings mode)")
        self.batch_size = int(batch_size)
        self.crops_per_recording = int(crops_per_recording)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.window_bytes = parse_size(shuffle_window, name="shuffle_window")
        self.partial = partial
        self.secondary_weight = float(secondary_weight)
        self.with_metadata = bool(with_metadata)
        self.on_error = on_error
        self.crop_seconds = crop_seconds
        if crop_seconds is None:
            self.crop_frames = int(ss.frames.max()) if len(ss) else 0
            self._random_crop = False
        else:
            samples = round(float(crop_seconds) * ss.sample_rate)
            if samples < 1:
                raise UsageError(f"crop_seconds={crop_seconds} is less than one sample at "
                                 f"{ss.sample_rate} Hz")
            self.crop_frames = ss.codec.frames_for_samples(samples)  # stored frames of a crop_seconds clip
            self._random_crop = True
        topo = detect_topology(rank, world_size)
        self.rank, self.world_size = topo.rank, topo.world_size
        self.classes, self._class_of = self._map_classes(classes)
        self._epoch = SharedEpoch(0)
        # a restored position (load_state_dict): start ``_resume_start`` in epoch ``_resume_epoch``;
        # ``_resume_gen`` counts restores, so each process applies a restore to one iteration only
        self._resume_start = SharedEpoch(0)
        self._resume_epoch = SharedEpoch(-1)
        self._resume_gen = SharedEpoch(0)
        self._used_gen = 0            # process-local: the last restore this process has iterated
        self._iter_start = 0          # process-local: start of this process's current iteration
        self._iter_yielded = 0        # process-local: batches yielded by it (num_workers=0)
        self.stats: dict[str, int] = {"batches": 0, "items": 0, "skipped": 0}
        self._order_cache: tuple[int, np.ndarray] | None = None
        self._scratch_buf: np.ndarray | None = None
        self.read_threads = None if read_threads is None else int(read_threads)
        self._thread_pool: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool), made on first use
        if len(self) == 0:
            log.warning("%s: rank %d of %d gets no batch (%d items, batch_size %d, partial=%r)",
                        ss.root, self.rank, self.world_size, self.num_items, self.batch_size, partial)

    def _map_classes(self, classes: Sequence[str] | None) -> tuple[list[str], np.ndarray]:
        vocab = self.shards.vocabulary
        if classes is None:
            return list(vocab), np.arange(len(vocab), dtype=np.int64)
        classes = [str(c) for c in classes]
        if len(set(classes)) != len(classes):
            raise UsageError("classes has duplicate names")
        where = {c: i for i, c in enumerate(classes)}
        class_of = np.asarray([where.get(v, -1) for v in vocab], dtype=np.int64)
        ss = self.shards
        lost_primary = int(np.count_nonzero((ss.label >= 0) & (class_of[np.maximum(ss.label, 0)] < 0)))
        lost_secondary = int(np.count_nonzero(class_of[ss.sec_idx] < 0)) if ss.sec_idx.size else 0
        if lost_primary or lost_secondary:
            missing = [v for v, c in zip(vocab, class_of) if c < 0]
            log.warning("%s: %d label(s) of the vocabulary are not in classes (%s%s); dropped from the "
                        "targets: %d primary labels (those samples get no primary target) and %d "
                        "secondary labels", ss.root, len(missing), ", ".join(missing[:5]),
                        ", ..." if len(missing) > 5 else "", lost_primary, lost_secondary)
        return classes, class_of

    # -- epoch and plan --------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration uses (also in persistent workers).

        A position restored by :meth:`load_state_dict` is kept for its own epoch and dropped for any
        other one.
        """
        self._epoch.value = int(epoch)
        if int(epoch) != self._resume_epoch.value:
            self._resume_epoch.value = -1
        self._iter_start, self._iter_yielded = 0, 0

    @property
    def epoch(self) -> int:
        return self._epoch.value

    @property
    def num_items(self) -> int:
        """Items per epoch over all ranks: samples × crops_per_recording."""
        return len(self.shards) * self.crops_per_recording

    def plan(self, start: int = 0) -> plan.RankPlan:
        """This rank's batches over the epoch's items ``start:`` (see :func:`plan.plan_rank`)."""
        return plan.plan_rank(self.num_items, world_size=self.world_size, rank=self.rank,
                              batch_size=self.batch_size, partial=self.partial, start=start)

    def order(self, epoch: int) -> np.ndarray:
        """The global item order of ``epoch``: int64 (num_items,), ``item = sample × crops + crop_no``."""
        if self._order_cache is None or self._order_cache[0] != epoch:
            ss = self.shards
            g = plan.epoch_order(ss.shard_ptr, ss.sample_bytes, seed=self.seed, epoch=epoch,
                                 shuffle=self.shuffle, window_bytes=self.window_bytes,
                                 crops_per_recording=self.crops_per_recording)
            self._order_cache = (epoch, g)
        return self._order_cache[1]

    def __len__(self) -> int:
        """Batches this rank yields in the next iteration (over all of its DataLoader workers):
        the whole epoch, or its remainder after :meth:`load_state_dict`."""
        return len(self.plan(self._pending_start()))

    def _pending_start(self) -> int:
        """Where the next iteration of this process starts in ``G``: a restored position, or 0."""
        epoch = self.epoch
        if self._resume_epoch.value == epoch and self._resume_gen.value != self._used_gen:
            return min(self._resume_start.value, self.num_items)
        return 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        topo = detect_topology(self.rank, self.world_size)
        epoch, start = self.epoch, self._pending_start()
        self._used_gen = self._resume_gen.value  # a restore applies to one iteration (per process)
        self._iter_start, self._iter_yielded = start, 0
        return self._counted(self._iter_batches(epoch, start, topo.worker, topo.num_workers))

    def _counted(self, batches: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for batch in batches:
            self._iter_yielded += 1
            yield batch

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
        if batches_done is None:
            start, done = self._iter_start, self._iter_yielded
            if done == 0:
                start = self._pending_start() or start
        else:
            if isinstance(batches_done, bool) or int(batches_done) < 0:
                raise UsageError(f"batches_done must be a non-negative integer, got {batches_done!r}")
            start, done = self._iter_start, int(batches_done)
            if self._resume_epoch.value == self.epoch and self._resume_gen.value != self._used_gen:
                start = self._pending_start()  # restored, not iterated yet in this process
        consumed = min(start + done * self.world_size * self.batch_size, self.num_items)
        return {"format": STATE_FORMAT, "seed": self.seed, "epoch": self.epoch, "consumed": int(consumed),
                "num_items": self.num_items, "version_id": self.shards.version_id,
                "shuffle": self.shuffle, "window_bytes": self.window_bytes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (:meth:`state_dict`): the next iteration of ``state["epoch"]``
        starts at item ``consumed`` of its order ``G``; later epochs start at 0 again.

        Costs no reads. The world size, number of workers and batch size may differ from the run that
        saved it: the remaining items ``G[consumed:]`` are split among the ranks as usual. Reaches
        DataLoader workers, persistent ones too (call it before the next iteration starts).
        """
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise UsageError(f"not a ShardDataset state (format {STATE_FORMAT}): {state!r:.200}")
        for key in ("seed", "epoch", "consumed", "num_items", "version_id"):
            if key not in state:
                raise UsageError(f"ShardDataset state lacks {key!r}")
        if int(state["seed"]) != self.seed:
            raise UsageError(f"the checkpoint was saved with seed={state['seed']}, this dataset has "
                             f"seed={self.seed}: the epoch order would differ; pass seed={state['seed']}")
        if str(state["version_id"]) != self.shards.version_id:
            raise UsageError(f"the checkpoint was saved on shard set version {state['version_id']}, "
                             f"{self.shards.root} is version {self.shards.version_id}: a different set "
                             "of samples has a different order; resume on the same shard set")
        if int(state["num_items"]) != self.num_items:
            raise UsageError(f"the checkpoint's epoch has {state['num_items']} items, this dataset "
                             f"{self.num_items} (crops_per_recording differs?)")
        for key, mine in (("shuffle", self.shuffle), ("window_bytes", self.window_bytes)):
            if key in state and state[key] != mine:
                raise UsageError(f"the checkpoint was saved with {key}={state[key]!r}, this dataset "
                                 f"has {mine!r}: the epoch order would differ")
        consumed = int(state["consumed"])
        if not 0 <= consumed <= self.num_items:
            raise UsageError(f"consumed={consumed} is outside 0..{self.num_items}")
        self._epoch.value = int(state["epoch"])
        self._resume_start.value = consumed
        self._resume_epoch.value = int(state["epoch"])
        self._resume_gen.value = self._resume_gen.value + 1
        self._iter_start, self._iter_yielded = consumed, 0

    def _iter_batches(self, epoch: int, start: int, worker: int, num_workers: int
                      ) -> Iterator[dict[str, Any]]:
        """Batches of this rank for ``worker`` of ``num_workers``, over ``G[start:]`` of ``epoch``."""
        rank_plan = self.plan(start)
        order = self.order(epoch)
        in_worker = torch.utils.data.get_worker_info() is not None
        for t in rank_plan.worker_batches(worker, num_workers):
            positions, valid = rank_plan.positions(t)
            yield self._read_batch(order[positions], valid, epoch, in_worker=in_worker)

    # -- the hot path ----------------------------------------------------------------------------

    def _read_batch(self, items: np.ndarray, valid: np.ndarray, epoch: int, *, in_worker: bool = False
                    ) -> dict[str, Any]:
        """Read the items (int64 (B,)) into one batch dict; ``valid`` bool (B,) marks padding."""
        ss = self.shards
        c = self.crops_per_recording
        samples = items // c if c > 1 else items
        frames = ss.frames[samples]
        t_len = self.crop_frames
        if self._random_crop and int(frames.max(initial=0)) > t_len:  # else every offset is 0
            offsets = plan.crop_offsets(ss.key_hash[samples], items % c, frames, t_len, seed=self.seed,
                                        epoch=epoch, shuffle=self.shuffle, crops_per_recording=c)
            nread = np.clip(frames - offsets, 0, t_len)
        else:
            offsets = np.zeros_like(frames)
            nread = np.minimum(frames, t_len)
        codec = ss.codec
        lanes = codec.lanes  # values per frame: read (B, T·lanes) frame-major, transpose into (B, lanes, T)
        frame_bytes = ss.frame_bytes
        file_off = ss.payload_offset[samples] + offsets * frame_bytes
        nbytes = nread * frame_bytes
        shard = ss.shard_id[samples]
        order = np.lexsort((file_off, shard))

        b = len(items)
        row_bytes = t_len * frame_bytes
        audio_shape = (t_len,) if lanes == 1 else (lanes, t_len)
        dtype = codec.dtype
        specs = codec.batch_field_specs()
        audio, labels_t, valid_t, index_t, *field_t = _new_batch(b, audio_shape, len(self.classes), in_worker,
                                                                 dtype, list(specs.values()))
        if lanes == 1:
            buf = audio.numpy()
        else:  # read interleaved (B, T·lanes) into a reused buffer, then transpose into (B, lanes, T)
            buf = self._scratch(b * t_len * lanes, dtype).reshape(b, t_len * lanes)
        flat = memoryview(buf.reshape(-1).view(np.uint8))
        valid_np = valid_t.numpy()
        valid_np[:] = valid
        reads = list(zip(order.tolist(), shard[order].tolist(), file_off[order].tolist(), nbytes[order].tolist()))
        threads = self._threads(in_worker, len(reads), int(nbytes.sum()))
        distinct = list(dict.fromkeys(r[1] for r in reads)) if threads > 1 else []
        if len(distinct) > shardset_mod.MAX_OPEN_SHARDS:  # the descriptors would not all stay open
            threads = 1
        if threads > 1:
            # descriptors are opened here, in this thread (the shard set's table is not thread-safe);
            # each reading thread takes every threads-th read, still in (shard, offset) order
            fds: dict[int, int | OSError] = {}
            for sh in distinct:
                try:
                    fds[sh] = ss.fd(sh)
                except OSError as exc:
                    fds[sh] = exc
            parts = [reads[k::threads] for k in range(threads)]
            outcome = list(self._pool().map(lambda part: _read_rows(ss, flat, row_bytes, samples, part, fds),
                                            parts))
            errors = sorted((e for part in outcome for e in part), key=lambda e: e[0])
        else:
            errors = _read_rows(ss, flat, row_bytes, samples, reads, None)
        failed: list[int] = []
        for j, err, cause in errors:
            if self.on_error == "raise":
                raise err from cause
            self._skip(err)
            failed.append(j)
        for j in np.flatnonzero(nread < t_len).tolist():
            buf[j, int(nread[j]) * lanes:] = 0
        labels = labels_t.numpy()
        self._labels(samples, labels)
        if failed:
            buf[failed] = 0
            labels[failed] = 0.0
            valid_np[failed] = False
        if lanes > 1:
            np.copyto(audio.numpy(), buf.reshape(b, t_len, lanes).transpose(0, 2, 1))
        index_t.numpy()[:] = samples
        self.stats["batches"] += 1
        self.stats["items"] += b
        out: dict[str, Any] = {codec.batch_key: audio}
        for (name, values), tensor in zip(codec.batch_fields(ss.codec_columns, samples).items(), field_t):
            arr = tensor.numpy()
            arr[:] = values
            if failed:
                arr[failed] = 0
            out[name] = tensor
        out.update({
            "labels": labels_t,
            "valid": valid_t,
            "keys": [ss.keys[i] for i in samples.tolist()],
            "index": index_t,
        })
        if self.with_metadata:
            bad = set(failed)
            out["meta"] = [self._meta(i, j in bad) for j, i in enumerate(samples.tolist())]
        return out

    def _threads(self, in_worker: bool, reads: int, nbytes: int) -> int:
        """Reading threads for a batch of ``reads`` reads of ``nbytes`` bytes: ``read_threads``, or by
        default 2 in the training process itself (``num_workers=0``) on a machine with 2+ cores and 1 in
        DataLoader workers (they already read in parallel). The page-cache copies run without the GIL, so
        two threads copy a 64 × 5 s wav16 batch (20 MB) ~1.3× as fast as one here (docs/benchmarks.md);
        a batch under 4 MB per thread (mel-u8: 2.6 MB) is faster read by one thread than handed out."""
        if self.read_threads is not None:
            return max(1, min(self.read_threads, reads))
        if in_worker or (os.cpu_count() or 1) < 2:
            return 1
        return max(1, min(2, reads // 4, nbytes // _THREAD_MIN_BYTES))

    def _pool(self) -> ThreadPoolExecutor:
        """This process's reading threads (a process forked from one that had them makes its own)."""
        if self._thread_pool is None or self._thread_pool[0] != os.getpid():
            n = self.read_threads if self.read_threads is not None else 2
            self._thread_pool = (os.getpid(), ThreadPoolExecutor(n, thread_name_prefix="shardkit-read"))
        return self._thread_pool[1]

    def _scratch(self, n: int, dtype: type = np.int16) -> np.ndarray:
        """A reused buffer of at least ``n`` elements of ``dtype`` (multi-channel and mel reads only)."""
        if self._scratch_buf is None or self._scratch_buf.size < n or self._scratch_buf.dtype != dtype:
            self._scratch_buf = np.empty(n, dtype=dtype)
        return self._scratch_buf[:n]

    def _labels(self, samples: np.ndarray, out: np.ndarray) -> None:
        """Write the multi-hot targets of ``samples`` into ``out``, float32 (B, n_classes)."""
        ss = self.shards
        b = len(samples)
        out[:] = 0.0
        if not self.classes:
            return
        starts = ss.sec_ptr[samples]
        counts = ss.sec_ptr[samples + 1] - starts
        total = int(counts.sum())
        if total and self.secondary_weight:
            rows = np.repeat(np.arange(b), counts)
            before = np.cumsum(counts) - counts
            idx = np.repeat(starts - before, counts) + np.arange(total)
            cls = self._class_of[ss.sec_idx[idx]]
            keep = cls >= 0
            out[rows[keep], cls[keep]] = self.secondary_weight
        primary = ss.label[samples]
        cls = np.where(primary >= 0, self._class_of[np.maximum(primary, 0)], -1)
        keep = cls >= 0
        out[np.flatnonzero(keep), cls[keep]] = 1.0

    def _meta(self, i: int, failed: bool) -> dict[str, Any]:
        if failed:
            return {}
        try:
            return self.shards.read_meta(i)
        except ShardReadError as exc:
            if self.on_error == "raise":
                raise
            self._skip(exc)
            return {}

    def _skip(self, exc: Exception) -> None:
        self.stats["skipped"] += 1
        log.warning("skipping a sample (on_error='skip'): %s", exc)

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the shard files this process opened."""
        self.shards.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_order_cache"] = None
        state["_scratch_buf"] = None
        state["_thread_pool"] = None
        return state

    def __repr__(self) -> str:
        return (f"ShardDataset({str(self.shards.root)!r}, items={self.num_items}, "
                f"batch_size={self.batch_size}, rank={self.rank}/{self.world_size}, "
                f"shuffle={self.shuffle}, partial={self.partial!r}, batches={len(self)})")
