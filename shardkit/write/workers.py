"""The decoding side of a pack: :func:`process_source` (decode, resample, cut and encode one source),
and the local engine's worker processes that run it and hand the samples to the writer in source order
(:func:`ordered_results`)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from shardkit.encode.base import Codec
from shardkit.errors import DecodeError, PackError
from shardkit.format import SHARD_PREFIX, TMP_SUFFIX
from shardkit.ingest.decode import Decoded, PcmStream, open_source
from shardkit.ingest.segment import Piece
from shardkit.ingest.sources import Reject, SourceItem
from shardkit.write.options import PackOptions
from shardkit.write.shards import EncodedSample, encode_sample
from shardkit.write.streamed import SPILL_READ_WHOLE_BYTES, LazySamples, SpillReader

logger = logging.getLogger(__name__)

#: sources in flight per worker: with 3, a long recording at the head of the order kept the other
#: worker idle (results are consumed in order) and workers waited ~5 ms per source for their next one
IN_FLIGHT = 8
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class _Context:
    options: PackOptions
    codec: Codec
    label_index: dict[str, int]
    device: str = "cpu"


_CTX: _Context | None = None


def _init_worker(ctx: _Context, parent: int) -> None:
    global _CTX
    _die_with_parent(parent)
    _CTX = ctx
    ctx.codec.prepare_worker()


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel SIGKILL this worker when the pack process dies, however it dies (kill -9
    included), so no decoding process outlives it. Elsewhere the pool's own shutdown has to do."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    except (OSError, AttributeError):  # no prctl: nothing more to do
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _work(item: SourceItem, spill: str) -> _Spilled | Reject:
    assert _CTX is not None
    result = process_source(item, _CTX)
    if isinstance(result, Reject):
        return result
    try:
        return _Spilled.write(spill, result)
    except DecodeError as exc:  # a long source that no longer decodes as when it was opened
        Path(spill).unlink(missing_ok=True)
        return Reject(item.rel, item.row, exc.reason)
    except OSError as exc:  # ENOSPC and friends: say where and what to do, keep what is written
        Path(spill).unlink(missing_ok=True)
        raise PackError(f"{spill}: cannot hand {item.rel}'s samples to the writer ({exc.strerror or exc}); free "
                        "space in the output folder and re-run the same command to continue") from None


@dataclass(frozen=True)
class _Spilled:
    """A worker's samples on their way to the main process, their WAV bytes moved into the file
    ``path`` (one after another) and only the rest pickled. Through the result pipe the PCM went at
    ~250 MB/s on 2 busy cores (a wake-up per 64 KiB), which kept workers waiting ~20 % of the time."""

    path: str
    samples: list[EncodedSample]  #: with ``wav=b""``
    sizes: list[int]

    @classmethod
    def write(cls, path: str, samples: Sequence[EncodedSample]) -> _Spilled:
        kept, sizes = [], []
        with open(path, "wb") as fh:
            for s in samples:  # once: a long source's samples are made as they are iterated
                fh.write(s.wav)
                kept.append(replace(s, wav=b""))
                sizes.append(len(s.wav))
        return cls(path, kept, sizes)

    def load(self) -> Sequence[EncodedSample]:
        """Read the WAV bytes back (one read into one buffer; above ``SPILL_READ_WHOLE_BYTES`` one
        sample at a time), delete the file, return the samples."""
        if sum(self.sizes) > SPILL_READ_WHOLE_BYTES:
            return SpillReader(self.path, self.samples, self.sizes)
        buf = bytearray(sum(self.sizes))
        view = memoryview(buf)
        with open(self.path, "rb", buffering=0) as fh:
            got = 0
            while got < len(buf):
                n = fh.readinto(view[got:])
                if not n:
                    raise PackError(f"{self.path}: a worker's spill file ended early (disk full?)")
                got += n
        os.unlink(self.path)
        samples, offset = [], 0
        for s, size in zip(self.samples, self.sizes):
            samples.append(replace(s, wav=view[offset: offset + size]))
            offset += size
        return samples


def process_source(item: SourceItem, ctx: _Context) -> Sequence[EncodedSample] | Reject:
    """Decode one source and encode its samples; a bad file becomes a :class:`Reject`. The one
    per-source function every engine runs (:mod:`shardkit.write.engines`), so that the bytes do not
    depend on the engine. A long source (:func:`open_source` streams it) gives :class:`LazySamples`,
    made one at a time as they are taken."""
    opts = ctx.options
    decoded = _decode_source(item, opts)
    if isinstance(decoded, Reject):
        return decoded
    dec, pcm = decoded
    pieces = opts.pieces(pcm.shape[0])
    if not pieces:
        return Reject(item.rel, item.row,
                      f"too short: {pcm.shape[0] / opts.sample_rate:.2f} s is less than one "
                      f"{opts.segment_seconds:g} s segment and --tail is drop")
    label = ctx.label_index.get(item.primary_label, -1) if item.primary_label else -1
    secondary = tuple(ctx.label_index[s] for s in item.secondary_labels)

    def make(n: int, piece: Piece) -> EncodedSample:
        chunk = pcm[piece.start: piece.start + piece.length]
        if piece.pad:
            chunk = np.concatenate([chunk, np.zeros((piece.pad, pcm.shape[1]), np.int16)])
        key = f"{item.stem}-{n:04d}"
        meta = _sample_meta(item, key, piece, n, len(pieces), chunk.shape[0], dec, opts)
        return encode_sample(ctx.codec, chunk, key=key, label=label, secondary=secondary, meta=meta,
                             source=item.rel, start=piece.start, device=ctx.device)

    if isinstance(pcm, PcmStream):
        return LazySamples(pieces, make)
    return [make(n, piece) for n, piece in enumerate(pieces)]


def _decode_source(item: SourceItem, opts: PackOptions) -> tuple[Decoded, np.ndarray | PcmStream] | Reject:
    """Decode and resample one source to int16 ``(frames, opts.channels)`` (a :class:`PcmStream` for a
    long one, decoded again as its pieces are taken), or say why not."""
    try:
        dec = open_source(item.path, sample_rate=opts.sample_rate, mono=opts.channels == 1, name=item.rel)
    except DecodeError as exc:
        return Reject(item.rel, item.row, exc.reason)
    except Exception as exc:  # a decoder bug must not end a pack of 30k files
        logger.exception("unexpected error decoding %s", item.rel)
        return Reject(item.rel, item.row, f"unreadable: unexpected {type(exc).__name__}: {exc}")
    pcm = dec.pcm
    if opts.channels > 1 and pcm.shape[1] != opts.channels:
        if pcm.shape[1] != 1:
            return Reject(item.rel, item.row,
                          f"channels: the file has {pcm.shape[1]} channels, the pack keeps {opts.channels}")
        pcm = pcm.repeat(opts.channels, axis=1)
    return dec, pcm


def _sample_meta(item: SourceItem, key: str, piece: Piece, n: int, pieces: int, frames: int, dec: Decoded,
                 opts: PackOptions) -> dict[str, Any]:
    """The sample's metadata map (format §3.2), the codec's own keys aside."""
    return {
        "key": key, "source": item.rel, "row": item.row,
        "primary_label": item.primary_label, "secondary_labels": list(item.secondary_labels),
        "sample_rate": opts.sample_rate, "channels": opts.channels, "frames": frames,
        "padded_frames": piece.pad, "start_frame": piece.start,
        "start_seconds": round(piece.start / opts.sample_rate, 6),
        "duration_seconds": round(frames / opts.sample_rate, 6),
        "segment": n, "segments": pieces,
        "source_sample_rate": dec.source_sample_rate, "source_channels": dec.source_channels,
        "source_frames": dec.source_frames, "source_format": dec.source_format,
        "extra": item.extra,
    }


def ordered_results(
    items: list[SourceItem], start: int, ctx: _Context, workers: int, out: Path
) -> Iterator[tuple[int, Sequence[EncodedSample] | Reject]]:
    """Process ``items[start:]`` and yield results in item order, at most ``IN_FLIGHT``×workers at a
    time. Workers hand their WAV bytes over in spill files in ``out`` (``*.tmp``: a crash leaves nothing
    that a re-run does not clean up), so what waits in flight is on disk, not in memory."""
    if workers <= 1:
        for i in range(start, len(items)):
            yield i, process_source(items[i], ctx)
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(ctx, os.getpid()))

    def spill(i: int) -> str:
        return str(out / f"{SHARD_PREFIX}spill-{i:08d}{TMP_SUFFIX}")

    pending: deque = deque()
    taken: int | None = None  # the item whose spill is being read back (out of pending, maybe still on disk)
    try:
        todo = iter(range(start, len(items)))
        with _sigint_ignored():  # the first submits start the workers: they inherit SIGINT ignored
            for i in todo:
                pending.append((i, pool.submit(_work, items[i], spill(i))))
                if len(pending) >= IN_FLIGHT * workers:
                    break
        while pending:
            i, fut = pending[0]
            result = fut.result()
            taken = i
            pending.popleft()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_work, items[nxt], spill(nxt))))
            yield i, result.load() if isinstance(result, _Spilled) else result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for i in [taken, *(i for i, _ in pending)]:
            if i is not None:  # an interrupt between taking a result and reading it back leaves its spill
                Path(spill(i)).unlink(missing_ok=True)


class _sigint_ignored:
    """SIGINT ignored while the pool starts its processes, which inherit that: Ctrl-C in a terminal
    reaches the whole process group, and a worker still importing printed a KeyboardInterrupt
    traceback each; the pack process alone handles it and stops its workers (they also die with it,
    :func:`_die_with_parent`). A Ctrl-C in these few milliseconds is lost (press it again). Only in
    the main thread, where Python handles signals."""

    def __enter__(self) -> None:
        self.active = threading.current_thread() is threading.main_thread()
        if self.active:
            self.old = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc: object) -> None:
        if self.active:
            signal.signal(signal.SIGINT, self.old if self.old is not None else signal.default_int_handler)
