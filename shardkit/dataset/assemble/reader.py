"""The hot path of :class:`~shardkit.dataset.ShardDataset`: one batch from a list of items.

:meth:`BatchReader.read` computes each item's frames (:meth:`~BatchReader._crop_plan`) and byte
range in its shard (:meth:`~BatchReader._byte_ranges`), sorts the ranges by (shard, offset) and has
the shard set's :class:`~shardkit.storage.base.Storage` fill them straight into the rows of one
preallocated batch array (:meth:`~BatchReader.fill`: one ``preadv`` per item for local storage, in
one or more threads). The array becomes the batch tensor without a copy; in DataLoader workers it
lives in a reusable shared-memory slot (:mod:`.tensors`). The codec says what a batch
holds (``lanes``, ``dtype``, ``batch_key``, ``batch_fields``) and which bytes a crop needs
(:meth:`~shardkit.encode.Codec.crop_ranges`); the one branch on it: a
:class:`~shardkit.encode.FrameCodec`'s ranges are the frames and go straight into the rows, any other
codec's whole members are read into a scratch buffer and :meth:`~shardkit.encode.Codec.crop` decodes
each row's frames out of them (:mod:`.members`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
import torch

from shardkit.dataset.assemble.members import WholeMembers
from shardkit.dataset.assemble.readahead import ReadAhead
from shardkit.dataset.assemble.tensors import ShardBatch, check_batch_bytes, new_batch, transpose_lanes, zero_tails
from shardkit.dataset.crc import CrcCheck
from shardkit.dataset.labels import multi_hot
from shardkit.dataset.options import ReadOptions
from shardkit.dataset.order.crops import crop_frames, crop_offsets
from shardkit.dataset.order.grid import set_grid
from shardkit.encode.base import FrameCodec
from shardkit.errors import ShardReadError
from shardkit.read.shardset import SKIP_HINT, ShardSet
from shardkit.storage.base import OpenFailed, RangeError, ShortRead

log = logging.getLogger(__name__)

#: by default a batch gets a second reading thread only if each thread then copies at least this much
_THREAD_MIN_BYTES = 4 << 20


_CPU_COUNT: list[int] = []


def _cpus() -> int:
    """``os.cpu_count()``, asked once per process (it reads /proc or sysfs: ~3 % of a small batch)."""
    if not _CPU_COUNT:
        _CPU_COUNT.append(os.cpu_count() or 1)
    return _CPU_COUNT[0]


class Read(NamedTuple):
    """One item's read: ``nbytes`` bytes at ``offset`` of shard number ``shard`` into batch row ``row``."""

    row: int
    shard: int
    offset: int
    nbytes: int


class BatchReader:
    """Reads batches of items of ``ss`` as :class:`~shardkit.dataset.ShardDataset` describes them.

    ``class_of``: the class of each vocabulary label (:func:`~shardkit.dataset.labels.map_classes`).
    ``stats`` counts batches, items and skipped samples in this process.
    """

    def __init__(self, ss: ShardSet, opts: ReadOptions, n_classes: int, class_of: np.ndarray,
                 targets: Any = None) -> None:
        self.ss, self.opts = ss, opts
        self.n_classes, self.class_of = n_classes, class_of
        self.crop_frames, self.random_crop = crop_frames(ss, opts.crop_seconds)
        check_batch_bytes(ss, opts, self.crop_frames, n_classes)
        #: a label layer's :class:`~shardkit.dataset.targets.Targets`, or None
        self.targets = targets
        #: ``crops="grid"``: (samples, first frames, window numbers) int64 (M,) of every window
        #: (:func:`~shardkit.dataset.order.grid.set_grid`)
        self.grid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if opts.crops == "grid":
            self.grid = set_grid(ss, opts.crop_seconds or 0, opts.tail)
            self.random_crop = False
        self.stats: dict[str, int] = {"batches": 0, "items": 0, "skipped": 0}
        self.crc = CrcCheck(ss, self.stats) if opts.verify_crc else None
        self._thread_pool: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool), made on first use
        self._scratch_buf: np.ndarray | None = None
        #: the whole-member path of a codec that is not a frame codec, else None
        self.members = None if isinstance(ss.codec, FrameCodec) else WholeMembers()

    def read(self, items: np.ndarray, valid: np.ndarray, epoch: int, *, in_worker: bool = False,
             draws: np.ndarray | None = None) -> dict[str, Any]:
        """Read the items (int64 (B,)) into one batch dict; ``valid`` bool (B,) marks padding;
        ``draws`` int64 (B,): which copy of its item each entry is in a drawn epoch (each copy gets its
        own random crop; None: all 0)."""
        return self.read_rows(self.new_batch(len(items), in_worker), items, valid, epoch, in_worker=in_worker,
                              draws=draws)

    def new_batch(self, b: int, in_worker: bool, extra: Sequence[tuple[tuple[int, ...], Any]] = ()
                  ) -> list[torch.Tensor]:
        """Uninitialised tensors of a batch of ``b`` rows (:func:`.tensors.new_batch`) for :meth:`read_rows`, then
        one per ``extra`` (shape without B, dtype) for the caller's own fields, in the same memory."""
        codec, t_len = self.ss.codec, self.crop_frames
        audio_shape = (t_len,) if codec.lanes == 1 else (codec.lanes, t_len)
        return new_batch(b, audio_shape, self.n_classes, in_worker, codec.dtype,
                          [*codec.batch_field_specs().values(), *self._item_specs(), *extra])

    def read_rows(self, tensors: list[torch.Tensor], items: np.ndarray, valid: np.ndarray, epoch: int, *,
                  in_worker: bool = False, draws: np.ndarray | None = None) -> dict[str, Any]:
        """:meth:`read` into ``tensors`` of :meth:`new_batch` (or row slices of them: a mixture's part
        fills its rows of a shared batch)."""
        codec, t_len, b = self.ss.codec, self.crop_frames, len(items)
        samples, offsets, nread = self._crop_plan(items, epoch, draws)
        reads = self._byte_ranges(samples, offsets, nread)
        audio = tensors[0]
        if codec.lanes == 1:
            buf = audio.numpy()
        else:  # read interleaved (B, T·lanes) into a reused buffer, then transpose into (B, lanes, T)
            buf = self._scratch(b * t_len * codec.lanes, codec.dtype).reshape(b, t_len * codec.lanes)
        if self.members is None:  # the crops' bytes are the frames: straight into the rows
            flat, row_bytes = memoryview(buf.reshape(-1).view(np.uint8)), t_len * codec.frame_bytes
        else:  # whole members, one per row of a scratch buffer, decoded into the rows below
            flat, row_bytes = self.members.buffer(b, reads)
        errors = self.fill(reads, flat, row_bytes, in_worker=in_worker)
        failed = self._apply_read_errors(errors, samples)
        if self.crc is not None:
            failed = sorted(failed + self._apply_errors(
                self.crc.check(reads, samples, offsets, nread, flat, row_bytes, failed)))
        if self.members is not None:
            failed = sorted(failed + self._apply_errors(
                self.members.decode(self.ss, reads, flat, row_bytes, buf, samples, offsets, nread, failed)))
        metas = self._metas(samples, failed) if self.opts.with_metadata else None
        zero_tails(buf, nread, t_len, codec.lanes)
        n_codec = len(codec.batch_field_specs())
        out = self._assemble(tensors[:4 + n_codec], buf, samples, valid, failed, metas)
        # seconds into the sample: a grid window's nominal start (k × crop_seconds), else the crop's first frame
        begin = (self.grid[2][items] * float(self.opts.crop_seconds or 0) if self.grid is not None
                 else offsets * self.ss.seconds_per_frame)
        out.update(self._item_fields(tensors[4 + n_codec:], samples, begin, nread, failed, valid))
        return out

    def _item_specs(self) -> list[tuple[tuple[int, ...], Any]]:
        """(shape without B, dtype) of :meth:`_item_fields`' tensors, in its order."""
        specs: list[tuple[tuple[int, ...], Any]] = [((), np.float64), ((), np.float64)]
        if self.targets is not None:
            specs += [((self.n_classes,), np.float32), ((), np.bool_)]
        return specs

    def _item_fields(self, tensors: list[torch.Tensor], samples: np.ndarray, begin: np.ndarray,
                     nread: np.ndarray, failed: list[int], valid: np.ndarray) -> dict[str, Any]:
        """Where each row's audio comes from (``source``; ``start_seconds``/``end_seconds`` float64 (B,) in
        the source: the crop's start (``begin`` seconds into its sample), and its start + ``crop_seconds``)
        and, with a label layer, its ``targets`` float32 (B, C) and ``targets_mask`` bool (B,)
        (:mod:`shardkit.dataset.targets`; 0 and mask False also for padding, ``valid`` False, and failed reads)."""
        ss, spf = self.ss, self.ss.seconds_per_frame
        start = tensors[0].numpy()
        start[:] = ss.start_seconds[samples] + begin
        span = self.opts.crop_seconds if self.opts.crop_seconds is not None else nread * spf
        tensors[1].numpy()[:] = start + span
        out: dict[str, Any] = {"source": [ss.source_names[s] for s in ss.source_id[samples].tolist()],
                               "start_seconds": tensors[0], "end_seconds": tensors[1]}
        if self.targets is not None:
            targets, mask = tensors[2].numpy(), tensors[3].numpy()
            seconds = nread * spf  # the crop's real audio, at most crop_seconds (a log-mel crop has a frame more)
            if self.opts.crop_seconds is not None:
                seconds = np.minimum(seconds, float(self.opts.crop_seconds))
            self.targets.fill(samples, begin, seconds, targets, mask)
            off = ~np.asarray(valid, dtype=bool)
            off[failed] = True
            targets[off], mask[off] = 0.0, False
            out.update(targets=tensors[2], targets_mask=tensors[3])
        return out

    def read_ahead(self, order: np.ndarray, bounds: np.ndarray, positions: np.ndarray) -> ReadAhead:
        """The :class:`ReadAhead` of an iteration that reads ``order[positions]`` (windows ``bounds``)."""
        ss = self.ss
        read_bytes = None
        if self.random_crop:  # the bytes a crop fetches of each member (all of it for a codec read whole)
            crop = np.minimum(ss.frames, self.crop_frames)
            read_bytes = ss.codec.crop_ranges(ss.wav_offset, ss.sample_bytes, 0, crop)[1]
        if self.grid is not None:  # items are windows (bounds: GridOrder's): hint their samples
            return ReadAhead(ss, self.grid[0][order], bounds, positions, 1, None)
        return ReadAhead(ss, order, bounds, positions, self.opts.crops_per_recording, read_bytes)

    # -- steps of a batch ------------------------------------------------------------------------

    def _crop_plan(self, items: np.ndarray, epoch: int, draws: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(samples, offsets, nread)`` int64 (B,): each item's sample row, first frame and frames to read
        (copy ``draws`` of an item crops at the position of crop number ``crop + crops × draws``)."""
        ss, opts, t_len = self.ss, self.opts, self.crop_frames
        if self.grid is not None:
            samples, offsets = self.grid[0][items], self.grid[1][items]
            return samples, offsets, np.clip(ss.frames[samples] - offsets, 0, t_len)
        c = opts.crops_per_recording
        samples = items // c if c > 1 else items
        frames = ss.frames[samples]
        if self.random_crop and int(frames.max(initial=0)) > t_len:  # else every offset is 0
            crop_no = items % c if draws is None else items % c + c * np.asarray(draws, dtype=np.int64)
            offsets = crop_offsets(ss.key_hash[samples], crop_no, frames, t_len, seed=opts.seed,
                                   epoch=epoch, shuffle=opts.shuffle, crops_per_recording=c)
            return samples, offsets, np.clip(frames - offsets, 0, t_len)
        return samples, np.zeros_like(frames), np.minimum(frames, t_len)

    def _byte_ranges(self, samples: np.ndarray, offsets: np.ndarray, nread: np.ndarray) -> list[Read]:
        """One :class:`Read` per item, sorted by (shard, offset): the order that reads a shard front to back."""
        ss = self.ss
        file_off, nbytes = ss.codec.crop_ranges(ss.wav_offset[samples], ss.sample_bytes[samples], offsets, nread)
        shard = ss.shard_id[samples]
        order = np.lexsort((file_off, shard))
        return list(map(Read, order.tolist(), shard[order].tolist(), file_off[order].tolist(),
                        nbytes[order].tolist()))

    def fill(self, reads: list[Read], flat: memoryview, row_bytes: int, *, in_worker: bool = False
             ) -> list[RangeError]:
        """Read each :class:`Read` into bytes ``[row × row_bytes, + nbytes)`` of ``flat`` through the
        shard set's storage; returns the failed ones as ``(row, storage error)``, sorted by row.

        Uses :meth:`_threads` threads, each taking every n-th read (still in (shard, offset) order);
        the batch is the same for any number.
        """
        threads = self._threads(in_worker, reads)
        if threads > 1:
            parts = [reads[k::threads] for k in range(threads)]
            outcome = self._pool().map(lambda part: self._fill_part(part, flat, row_bytes), parts)
            errors = [e for part in outcome for e in part]
        else:
            errors = self._fill_part(reads, flat, row_bytes)
        errors.sort(key=lambda e: e[0])
        return errors

    def _fill_part(self, reads: list[Read], flat: memoryview, row_bytes: int) -> list[RangeError]:
        """:meth:`fill` in one thread: one :meth:`Storage.read_into` call per run of one shard's reads."""
        read_into, names = self.ss.storage.read_into, self.ss.shard_names
        errors: list[RangeError] = []
        first, shard, ranges = 0, -1, []
        for i, (row, sh, offset, nbytes) in enumerate(reads):
            if sh != shard:  # reads are sorted by shard: one call per shard's run of reads
                if ranges:
                    errors += [(reads[first + k].row, e) for k, e in read_into(names[shard], ranges)]
                first, shard, ranges = i, sh, []
            start = row * row_bytes
            ranges.append((offset, nbytes, flat[start:start + nbytes]))
        if ranges:
            errors += [(reads[first + k].row, e) for k, e in read_into(names[shard], ranges)]
        return errors

    def _apply_read_errors(self, errors: list[RangeError], samples: np.ndarray) -> list[int]:
        """Raise the first failed read as a :class:`ShardReadError` (``on_error="raise"``), or log and
        count each one; returns the failed rows."""
        failed: list[int] = []
        for j, err in errors:
            exc = self.ss.range_error(int(samples[j]), err)
            if self.opts.on_error == "raise":
                raise exc from (None if isinstance(err, ShortRead | OpenFailed) else err)
            self._skip(exc)
            failed.append(j)
        return failed

    def _apply_errors(self, errors: list[tuple[int, ShardReadError]]) -> list[int]:
        """Raise the first error (``on_error="raise"``), or log and count each; returns their rows."""
        for _row, exc in errors[:1]:
            if self.opts.on_error == "raise":
                raise exc
        for _row, exc in errors:
            self._skip(exc)
        return [row for row, _ in errors]

    def _assemble(self, tensors: list[torch.Tensor], buf: np.ndarray, samples: np.ndarray,
                  valid: np.ndarray, failed: list[int], metas: list[dict[str, Any]] | None) -> dict[str, Any]:
        """The batch dict: audio (transposed for multi-lane codecs), the codec's fields, targets,
        ``valid`` (False also for failed reads, whose rows are zeroed), keys, index and metadata."""
        ss, codec, b = self.ss, self.ss.codec, len(samples)
        audio, labels_t, valid_t, index_t, *field_t = tensors
        labels = labels_t.numpy()
        multi_hot(samples, ss.label, ss.sec_ptr, ss.sec_idx, self.class_of, self.opts.secondary_weight, labels)
        valid_np = valid_t.numpy()
        valid_np[:] = valid
        if failed:
            buf[failed] = 0
            labels[failed] = 0.0
            valid_np[failed] = False
        if codec.lanes > 1:
            transpose_lanes(audio.numpy(), buf.reshape(b, self.crop_frames, codec.lanes))
        index_t.numpy()[:] = samples
        self.stats["batches"] += 1
        self.stats["items"] += b
        out: dict[str, Any] = ShardBatch({codec.batch_key: audio})
        for (name, values), tensor in zip(codec.batch_fields(ss.codec_columns, samples).items(), field_t):
            arr = tensor.numpy()
            arr[:] = values
            if failed:
                arr[failed] = 0
            out[name] = tensor
        out.update({"labels": labels_t, "valid": valid_t, "keys": [ss.keys[i] for i in samples.tolist()],
                    "index": index_t})
        if metas is not None:
            out["meta"] = metas
        return out

    def _metas(self, samples: np.ndarray, failed: list[int]) -> list[dict[str, Any]]:
        """Each row's ``.mp`` map ({} for a failed row). A member that cannot be read or decoded (or,
        with ``verify_crc``, fails its CRC-32) is a read error of its sample under ``on_error``: with
        "skip" its row joins ``failed`` (sorted, in place) and is zeroed like any skipped row."""
        bad, metas, errors = set(failed), [], []
        for j, i in enumerate(samples.tolist()):
            meta: dict[str, Any] = {}
            if j not in bad:
                try:
                    meta = self.crc.read_meta(i) if self.crc is not None else self.ss.read_meta(i)
                except ShardReadError as exc:
                    errors.append((j, exc))
            metas.append(meta)
        failed += self._apply_errors(errors)
        failed.sort()
        return metas

    def _skip(self, exc: Exception) -> None:
        self.stats["skipped"] += 1
        log.warning("skipping a sample (on_error='skip'): %s", str(exc).replace(SKIP_HINT, ""))

    # -- threads and buffers ---------------------------------------------------------------------

    def _threads(self, in_worker: bool, reads: list[Read]) -> int:
        """Reading threads for a batch of ``reads``: ``read_threads``, or by
        default 2 in the training process itself (``num_workers=0``) on a machine with 2+ cores and 1 in
        DataLoader workers (they already read in parallel). The page-cache copies run without the GIL, so
        two threads copy a 64 × 5 s wav16 batch (20 MB) ~1.3× as fast as one here (docs/benchmarks.md);
        a batch under 4 MB per thread (mel-u8: 2.6 MB) is faster read by one thread than handed out."""
        if self.opts.read_threads is not None:
            return max(1, min(self.opts.read_threads, len(reads)))
        if in_worker or _cpus() < 2:
            return 1
        return max(1, min(2, len(reads) // 4, sum(r.nbytes for r in reads) // _THREAD_MIN_BYTES))

    def _pool(self) -> ThreadPoolExecutor:
        """This process's reading threads (a process forked from one that had them makes its own)."""
        if self._thread_pool is None or self._thread_pool[0] != os.getpid():
            n = self.opts.read_threads if self.opts.read_threads is not None else 2
            self._thread_pool = (os.getpid(), ThreadPoolExecutor(n, thread_name_prefix="shardkit-read"))
        return self._thread_pool[1]

    def _scratch(self, n: int, dtype: Any = np.int16) -> np.ndarray:
        """A reused buffer of at least ``n`` elements of ``dtype`` (multi-lane codecs only)."""
        if self._scratch_buf is None or self._scratch_buf.size < n or self._scratch_buf.dtype != dtype:
            self._scratch_buf = np.empty(n, dtype=dtype)
        return self._scratch_buf[:n]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_scratch_buf"] = None
        state["_thread_pool"] = None
        return state
