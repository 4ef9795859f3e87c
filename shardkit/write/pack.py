"""``pack``: sources → decoded int16 samples → deterministic tar shards + indexes + manifest.

The pipeline of one run::

    discover (ingest.sources) → decode + resample (ingest.decode, in worker processes)
    → cut (ingest.segment) → encode members (the codec, encode.meta) → ShardWriter (write.shards)
    → manifest (format.Manifest), written last

Determinism: sources are processed in one fixed order and results are consumed in that order
whatever the number of workers, so the bytes depend only on the inputs and options. Crash safety:
a shard appears under its final name only when complete, and ``pack-state.json`` records, after
every shard, where the next one starts; a re-run continues there and writes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from shardkit.encode import meta as meta_codec
from shardkit.encode.base import Codec
from shardkit.encode.mel_config import MelConfig
from shardkit.encode.registry import DEFAULT_CODEC, codec_class, codec_ids
from shardkit.errors import (
    DecodeError,
    FormatError,
    OutputConflictError,
    PackError,
    ShardkitError,
    UnknownCodecError,
    UsageError,
)
from shardkit.files import atomic_write
from shardkit.format import (
    FORMAT_VERSION,
    INDEX_SUFFIX,
    MANIFEST_NAME,
    PACK_STATE_NAME,
    SHARD_PREFIX,
    SHARD_SUFFIX,
    TMP_SUFFIX,
    Manifest,
    ShardEntry,
    dumps_json,
)
from shardkit.ingest.decode import decode_file
from shardkit.ingest.segment import Piece, Tail, plan_chunks, plan_segments
from shardkit.ingest.sources import Order, Reject, SourceItem, discover, vocabulary_of
from shardkit.units import parse_size
from shardkit.write.shards import EncodedSample, ShardWriter
from shardkit.write.tar import END_OF_ARCHIVE, member_bytes

logger = logging.getLogger(__name__)

Mode = Literal["recordings", "segments"]
_INDEX_BYTES_PER_SAMPLE = 160  # budget reserve for a shard's index, per sample (+ 4 KiB)
#: sources in flight per worker: with 3, a long recording at the head of the order kept the other
#: worker idle (results are consumed in order) and workers waited ~5 ms per source for their next one
_IN_FLIGHT = 8


@dataclass(frozen=True)
class PackOptions:
    """What shapes the bytes of a shard set. Sizes accept ``"1GB"``-style strings.

    - ``sample_rate``: Hz of the stored audio.
    - ``mode``: ``"recordings"`` (whole recordings, cut into chunks of at most ``max_seconds``, for
      random crops at read time) or ``"segments"`` (windows of ``segment_seconds`` every
      ``hop_seconds``, the last partial window per ``tail``: pad / keep / drop).
    - ``channels``: 1 downmixes by the mean; 2 keeps stereo (mono sources are duplicated, sources
      with other channel counts are rejected).
    - ``shard_size``: a shard rolls before a sample would take it past this many bytes.
    - ``order``: ``"shuffled"`` (by a keyed hash of the path: every shard mixes labels) or ``"sorted"``.
    - ``codec``: the id of a codec of :mod:`shardkit.encode` (:func:`shardkit.encode.codec_ids`):
      ``wav16`` (int16 PCM in ``.wav`` members, the default) or ``mel-u8`` (the log-mel of each sample,
      computed by :class:`shardkit.device.LogMel` with ``mel`` and quantised to uint8, in ``.npy``
      members; see :mod:`shardkit.encode.mel_u8`). ``mel`` defaults to ``MelConfig.for_rate(sample_rate)``
      for codecs that store spectrograms; its ``normalize`` must be ``"none"`` (normalise on the device).
    """

    sample_rate: int = 32000
    mode: Mode = "recordings"
    segment_seconds: float = 5.0
    hop_seconds: float | None = None
    tail: Tail = "pad"
    max_seconds: float | None = 300.0
    channels: int = 1
    shard_size: int | str = "1GB"
    order: Order = "shuffled"
    codec: str = DEFAULT_CODEC
    mel: MelConfig | None = None

    def validated(self) -> PackOptions:
        """Check every option (raising :class:`UsageError`) and return a normalised copy."""
        if not isinstance(self.sample_rate, int) or not 1000 <= self.sample_rate <= 384000:
            raise UsageError(f"sample_rate must be an integer in 1000..384000 Hz, got {self.sample_rate!r}")
        if self.mode not in ("recordings", "segments"):
            raise UsageError(f"mode must be 'recordings' or 'segments', got {self.mode!r}")
        if self.tail not in ("pad", "keep", "drop"):
            raise UsageError(f"tail must be pad, keep or drop, got {self.tail!r}")
        if self.order not in ("shuffled", "sorted"):
            raise UsageError(f"order must be shuffled or sorted, got {self.order!r}")
        if self.channels not in (1, 2):
            raise UsageError(f"channels must be 1 (mono) or 2 (stereo), got {self.channels!r}")
        if not self.segment_seconds or self.segment_seconds <= 0:
            raise UsageError(f"segment_seconds must be positive, got {self.segment_seconds!r}")
        hop = self.hop_seconds if self.hop_seconds is not None else self.segment_seconds
        if hop <= 0:
            raise UsageError(f"hop_seconds must be positive, got {self.hop_seconds!r}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise UsageError(f"max_seconds must be positive (or None for whole recordings), got {self.max_seconds!r}")
        size = parse_size(self.shard_size, name="shard_size")
        if size < 64_000:
            raise UsageError(f"shard_size {self.shard_size!r} is too small; use at least 64KB (1GB is typical)")
        codec = self.make_codec()
        return replace(self, hop_seconds=float(hop), shard_size=size,
                       segment_seconds=float(self.segment_seconds), mel=codec.mel)

    def make_codec(self) -> Codec:
        """The codec object these options describe; :class:`UsageError` when they do not fit it."""
        try:
            cls = codec_class(self.codec)
        except UnknownCodecError:
            raise UsageError(f"codec must be one of {codec_ids()}, got {self.codec!r}") from None
        return cls.for_pack(self.sample_rate, self.channels, self.mel)

    def codec_config(self) -> dict[str, Any]:
        """The codec config written into every shard index."""
        return self.make_codec().config()

    def audio_doc(self) -> dict[str, Any]:
        """The manifest's ``audio`` map."""
        return self.make_codec().audio_doc()

    @property
    def layout(self) -> dict[str, Any]:
        if self.mode == "segments":
            return {"mode": "segments", "segment_seconds": self.segment_seconds,
                    "hop_seconds": self.hop_seconds, "tail": self.tail}
        return {"mode": "recordings", "max_seconds": self.max_seconds}

    def pieces(self, frames: int) -> list[Piece]:
        sr = self.sample_rate
        if self.mode == "segments":
            assert self.hop_seconds is not None
            return plan_segments(frames, round(self.segment_seconds * sr), round(self.hop_seconds * sr), self.tail)
        return plan_chunks(frames, round(self.max_seconds * sr) if self.max_seconds else None)


@dataclass
class PackProgress:
    """Handed to ``progress`` after every source."""

    files_done: int
    files_total: int
    seconds_done: float      #: audio seconds stored so far (this run)
    bytes_written: int       #: shard + index bytes in OUT
    samples: int
    shards: int
    rejects: int
    elapsed: float           #: wall seconds of this run


@dataclass
class PackResult:
    """What a pack produced (also for a pack that was already complete)."""

    out: Path
    manifest: Path
    version_id: str
    complete: bool
    shards: int
    samples: int
    bytes: int
    seconds: float           #: audio seconds in the shard set
    sources: int
    sources_packed: int
    rejects: list[Reject]
    elapsed: float           #: wall seconds of this run
    seconds_this_run: float  #: audio seconds packed by this run
    resumed: bool = False
    already_complete: bool = False
    more_bytes_needed: int = 0
    label_counts: dict[str, int] = field(default_factory=dict)

    @property
    def hours(self) -> float:
        return self.seconds / 3600


# ---------------------------------------------------------------- worker side


@dataclass(frozen=True)
class _Context:
    options: PackOptions
    codec: Codec
    label_index: dict[str, int]
    device: str = "cpu"


_CTX: _Context | None = None


def _init_worker(ctx: _Context) -> None:
    global _CTX
    _CTX = ctx
    ctx.codec.prepare_worker()


def _work(item: SourceItem, spill: str) -> _Spilled | Reject:
    assert _CTX is not None
    result = _process(item, _CTX)
    if isinstance(result, Reject):
        return result
    try:
        return _Spilled.write(spill, result)
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
    def write(cls, path: str, samples: list[EncodedSample]) -> _Spilled:
        with open(path, "wb") as fh:
            for s in samples:
                fh.write(s.wav)
        return cls(path, [replace(s, wav=b"") for s in samples], [len(s.wav) for s in samples])

    def load(self) -> list[EncodedSample]:
        """Read the WAV bytes back (one read into one buffer), delete the file, return the samples."""
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


def _process(item: SourceItem, ctx: _Context) -> list[EncodedSample] | Reject:
    """Decode one source and encode its samples; a bad file becomes a :class:`Reject`."""
    opts = ctx.options
    try:
        dec = decode_file(item.path, sample_rate=opts.sample_rate, mono=opts.channels == 1, name=item.rel)
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
    pieces = opts.pieces(pcm.shape[0])
    if not pieces:
        return Reject(item.rel, item.row,
                      f"too short: {pcm.shape[0] / opts.sample_rate:.2f} s is less than one "
                      f"{opts.segment_seconds:g} s segment and --tail is drop")
    label = ctx.label_index.get(item.primary_label, -1) if item.primary_label else -1
    secondary = tuple(ctx.label_index[s] for s in item.secondary_labels)
    samples = []
    for n, piece in enumerate(pieces):
        key = f"{item.stem}-{n:04d}"
        chunk = pcm[piece.start: piece.start + piece.length]
        if piece.pad:
            import numpy as np

            chunk = np.concatenate([chunk, np.zeros((piece.pad, pcm.shape[1]), np.int16)])
        frames = chunk.shape[0]
        enc = ctx.codec.encode(chunk, device=ctx.device)
        meta = meta_codec.encode({
            "key": key, "source": item.rel, "row": item.row,
            "primary_label": item.primary_label, "secondary_labels": list(item.secondary_labels),
            "sample_rate": opts.sample_rate, "channels": int(pcm.shape[1]), "frames": frames,
            "padded_frames": piece.pad, "start_frame": piece.start,
            "start_seconds": round(piece.start / opts.sample_rate, 6),
            "duration_seconds": round(frames / opts.sample_rate, 6),
            "segment": n, "segments": len(pieces),
            "source_sample_rate": dec.source_sample_rate, "source_channels": dec.source_channels,
            "source_frames": dec.source_frames, "source_format": dec.source_format,
            "extra": item.extra, **dict(enc.meta),
        })
        samples.append(EncodedSample(
            key=key, wav=enc.data, meta=meta, frames=enc.frames, label=label, secondary=secondary,
            source=item.rel, start=piece.start, wav_crc32=zlib.crc32(enc.data), meta_crc32=zlib.crc32(meta),
            ext=ctx.codec.ext, codec_columns=enc.columns,
        ))
    return samples


def _ordered_results(
    items: list[SourceItem], start: int, ctx: _Context, workers: int, out: Path
) -> Iterator[tuple[int, list[EncodedSample] | Reject]]:
    """Process ``items[start:]`` and yield results in item order, at most ``_IN_FLIGHT``×workers at a
    time. Workers hand their WAV bytes over in spill files in ``out`` (``*.tmp``: a crash leaves nothing
    that a re-run does not clean up), so what waits in flight is on disk, not in memory."""
    if workers <= 1:
        for i in range(start, len(items)):
            yield i, _process(items[i], ctx)
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(ctx,))

    def spill(i: int) -> str:
        return str(out / f"{SHARD_PREFIX}spill-{i:08d}{TMP_SUFFIX}")

    pending: deque = deque()
    try:
        todo = iter(range(start, len(items)))
        for i in todo:
            pending.append((i, pool.submit(_work, items[i], spill(i))))
            if len(pending) >= _IN_FLIGHT * workers:
                break
        while pending:
            i, fut = pending[0]
            result = fut.result()
            pending.popleft()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_work, items[nxt], spill(nxt))))
            yield i, result.load() if isinstance(result, _Spilled) else result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for i, _ in pending:
            Path(spill(i)).unlink(missing_ok=True)


# ---------------------------------------------------------------- the pack


def pack(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    metadata: str | os.PathLike[str] | None = None,
    options: PackOptions | None = None,
    workers: int = 1,
    budget: int | str | None = None,
    strict: bool = False,
    resume: bool | None = None,
    overwrite: bool = False,
    progress: Callable[[PackProgress], None] | None = None,
    device: str = "cpu",
) -> PackResult:
    """Pack the audio under ``src`` (and/or listed by ``metadata``) into a shard set in ``out``.

    - ``workers``: decoding processes (output bytes are identical for any number).
    - ``budget``: cap on shard + index bytes in ``out``; when the next sample would pass it the
      pack finishes the current shard, writes a valid (incomplete) manifest and reports
      ``more_bytes_needed``. Re-run with a larger budget to continue. With ``workers > 1`` the
      decoded samples of up to 8 sources per worker also pass through ``*.tmp`` spill files in ``out``
      on their way to the shards (deleted as they are consumed; at most ~8 × workers × the longest
      recording's PCM): leave that much room beyond the budget.
    - ``strict``: raise :class:`PackError` at the first bad source instead of recording a reject
      (shards already finished stay valid and resumable).
    - ``resume``: None continues an interrupted pack in ``out`` if there is one; True requires one.
    - ``overwrite``: delete a previous shard set in ``out`` first.
    - ``progress``: called with a :class:`PackProgress` after every source.
    - ``device``: where codec ``mel-u8`` computes spectrograms (``"cpu"``, ``"cuda"``, ``"cuda:1"``); a GPU
      and the CPU can differ in the last float bits, so a value near a rounding boundary may land one
      quantisation step apart.
    """
    t0 = time.monotonic()
    opts = (options or PackOptions()).validated()
    budget_bytes = parse_size(budget, name="budget") if budget is not None else None
    if workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")
    codec = opts.make_codec()
    codec.check_device(str(device))  # before anything is written
    out_dir = Path(out)
    items, csv_rejects = discover(src, metadata, order=opts.order)
    vocabulary = vocabulary_of(items)
    fingerprint = _fingerprint(items, csv_rejects, opts)
    pack_doc = {**_options_doc(opts), "source_fingerprint": fingerprint}

    state = _prepare_out(out_dir, fingerprint, overwrite=overwrite, resume=resume)
    if state is not None and state.get("complete"):
        return _result_from_manifest(out_dir, t0, already_complete=True)
    resumed = state is not None
    if state is None:
        state = {
            "format_version": FORMAT_VERSION, "source_fingerprint": fingerprint, "pack": pack_doc,
            "next_item": 0, "next_piece": 0, "shards": [], "rejects": [r.to_dict() for r in csv_rejects],
            "label_counts": {}, "sources_packed": 0,
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        _save_state(out_dir, state)
    else:
        logger.info("resuming the pack in %s at shard %d (source %d of %d)",
                    out_dir, len(state["shards"]), state["next_item"], len(items))
        _clean_unfinished(out_dir, len(state["shards"]))
    if strict and state["rejects"]:
        r = state["rejects"][0]
        raise PackError(f"{r['file'] or '(row ' + str(r['row']) + ')'}: {r['reason']} (--strict)")

    ctx = _Context(opts, codec, {label: i for i, label in enumerate(vocabulary)}, str(device))
    shards: list[dict[str, Any]] = state["shards"]
    label_counts: dict[str, int] = state["label_counts"]
    rejects: list[dict[str, Any]] = state["rejects"]
    committed = sum(s["bytes"] + s["index_bytes"] for s in shards)
    writer: ShardWriter | None = None
    stopped_at: tuple[int, int] | None = None
    seconds_run = 0.0
    samples_total = sum(s["samples"] for s in shards)
    files_done = state["next_item"]
    sources_packed = state["sources_packed"]
    first_piece = state["next_piece"]

    def report() -> None:
        if progress is not None:
            progress(PackProgress(
                files_done=files_done, files_total=len(items), seconds_done=seconds_run,
                bytes_written=committed + (writer.bytes if writer else 0), samples=samples_total,
                shards=len(shards), rejects=len(rejects), elapsed=time.monotonic() - t0,
            ))

    def close_shard(next_item: int, next_piece: int) -> None:
        nonlocal writer, committed
        assert writer is not None
        record = writer.finish()
        shards.append(record)
        committed += record["bytes"] + record["index_bytes"]
        writer = None
        state.update(next_item=next_item, next_piece=next_piece, sources_packed=sources_packed)
        _save_state(out_dir, state)

    per_frame = codec.seconds_per_frame
    report()
    try:
        for i, result in _ordered_results(items, state["next_item"], ctx, workers, out_dir):
            item = items[i]
            skip = first_piece if i == state["next_item"] else 0
            if isinstance(result, Reject):
                if strict:
                    raise PackError(f"{result.file}: {result.reason} (--strict; shards written so far are kept, "
                                    "re-run without --strict to record it as a reject and go on)")
                logger.warning("reject %s: %s", result.file, result.reason)
                rejects.append(result.to_dict())
                files_done = i + 1
                report()
                continue
            for n, sample in enumerate(result):
                if n < skip:
                    continue
                if writer is not None and len(writer) and writer.projected(sample) > opts.shard_size:
                    close_shard(i, n)
                reserve = 4096 + _INDEX_BYTES_PER_SAMPLE * ((len(writer) if writer else 0) + 1)
                open_bytes = writer.projected(sample) if writer else sample.tar_bytes + len(END_OF_ARCHIVE)
                if budget_bytes is not None and committed + open_bytes + reserve > budget_bytes:
                    if writer is not None and len(writer):
                        close_shard(i, n)
                    stopped_at = (i, n)
                    break
                if writer is None:
                    writer = ShardWriter(out_dir, len(shards), codec.config(), vocabulary)
                writer.add(sample)
                samples_total += 1
                seconds_run += sample.frames * per_frame
                if item.primary_label:
                    label_counts[item.primary_label] = label_counts.get(item.primary_label, 0) + 1
            if stopped_at is not None:
                break
            sources_packed += 1
            files_done = i + 1
            report()
        if writer is not None and len(writer):
            close_shard(len(items), 0)
    except BaseException as exc:
        if writer is not None:
            writer.abort()
        if isinstance(exc, OSError) and not isinstance(exc, ShardkitError):  # disk full, permissions, ...
            raise PackError(f"{out_dir}: writing the shard set failed ({exc.strerror or exc}); the {len(shards)} "
                            "finished shards are kept: fix the cause (free space?) and re-run the same command "
                            "to continue") from exc
        raise

    more = 0
    if stopped_at is not None:
        state.update(next_item=stopped_at[0], next_piece=stopped_at[1])
        more = _estimate_remaining(items, stopped_at, opts)
        logger.warning("budget of %d bytes reached after %d shards; about %d more bytes are needed",
                       budget_bytes, len(shards), more)
    complete = stopped_at is None
    state["complete"] = complete
    Manifest.build(
        codec=codec, layout=opts.layout, vocabulary=vocabulary, label_counts=label_counts,
        shards=[ShardEntry.from_dict(s) for s in shards], pack=pack_doc, rejects=rejects,
        sources=len(items) + len(csv_rejects), sources_packed=sources_packed, complete=complete,
        budget={"limit_bytes": budget_bytes, "exhausted": not complete, "more_bytes_needed": more},
    ).save(out_dir)
    if complete:
        (out_dir / PACK_STATE_NAME).unlink(missing_ok=True)
    else:
        _save_state(out_dir, state)
    report()
    result = _result_from_manifest(out_dir, t0, resumed=resumed)
    result.seconds_this_run = seconds_run
    return result


# ---------------------------------------------------------------- helpers


def _options_doc(opts: PackOptions) -> dict[str, Any]:
    d = asdict(opts)
    return {k: d[k] for k in sorted(d)}


def _fingerprint(items: list[SourceItem], rejects: list[Reject], opts: PackOptions) -> str:
    """sha256 over everything that decides the output bytes: options, sources (path, size, labels,
    extra columns, order) and CSV rejects."""
    h = hashlib.sha256()
    h.update(json.dumps(_options_doc(opts), sort_keys=True).encode())
    for it in items:
        try:
            size = os.path.getsize(it.path)
        except OSError:
            size = -1
        h.update(json.dumps([it.rel, size, it.stem, it.row, it.primary_label, list(it.secondary_labels),
                             it.extra], sort_keys=True, default=str).encode())
    for r in rejects:
        h.update(json.dumps(r.to_dict(), sort_keys=True).encode())
    return h.hexdigest()


def _ours(name: str) -> bool:
    return (name.startswith(SHARD_PREFIX) and (
        name.endswith((SHARD_SUFFIX, INDEX_SUFFIX, TMP_SUFFIX)))) or name in (
        MANIFEST_NAME, PACK_STATE_NAME, MANIFEST_NAME + TMP_SUFFIX, PACK_STATE_NAME + TMP_SUFFIX)


def _prepare_out(out: Path, fingerprint: str, *, overwrite: bool, resume: bool | None) -> dict[str, Any] | None:
    """Decide what to do with ``out``: None = start fresh; a state dict = continue (or, with
    ``complete``, nothing to do)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder; choose a folder for the shard set")
    names = sorted(os.listdir(out)) if out.is_dir() else []
    foreign = [n for n in names if not _ours(n)]
    if overwrite:
        if foreign:
            raise OutputConflictError(
                f"{out}: holds files that are not a shard set ({', '.join(foreign[:3])}); "
                "--overwrite only deletes shardkit's own files: choose an empty folder")
        for n in names:
            (out / n).unlink()
        names = []
    if not names:
        if resume:
            raise UsageError(f"{out}: there is no interrupted pack to resume; drop --resume to start one")
        return None
    if foreign:
        raise OutputConflictError(
            f"{out}: is not empty and is not a shardkit shard set ({', '.join(foreign[:3])}); choose an empty folder")
    state_path = out / PACK_STATE_NAME
    if state_path.exists():
        try:
            state = json.loads(state_path.read_bytes())
        except ValueError as exc:
            raise OutputConflictError(
                f"{state_path}: unreadable ({exc}); re-run with --overwrite to start over") from exc
        if state.get("source_fingerprint") != fingerprint:
            raise OutputConflictError(
                f"{out}: holds an unfinished pack of other sources or options; re-run that exact command "
                "to finish it, or add --overwrite to start over")
        state["complete"] = False
        return state
    if (out / MANIFEST_NAME).exists():
        try:
            doc = Manifest.load(out)
        except FormatError as exc:
            raise OutputConflictError(f"{exc}; re-run with --overwrite to start over") from None
        if doc.pack.get("source_fingerprint") != fingerprint:
            raise OutputConflictError(
                f"{out}: holds a shard set packed from other sources or options; choose another folder "
                "or add --overwrite to replace it")
        if resume:
            raise UsageError(f"{out}: the pack is already complete; nothing to resume")
        return {"complete": True}
    raise OutputConflictError(
        f"{out}: holds shard files but no manifest or pack state; add --overwrite to start over")


def _clean_unfinished(out: Path, shards_done: int) -> None:
    """Remove temp files and shards past the last recorded one (a crash can leave either)."""
    for name in os.listdir(out):
        if name.endswith(TMP_SUFFIX):
            (out / name).unlink()
        elif name.startswith(SHARD_PREFIX) and name.endswith((SHARD_SUFFIX, INDEX_SUFFIX)):
            number = int(name[len(SHARD_PREFIX):].split(".")[0])
            if number >= shards_done:
                (out / name).unlink()
    (out / MANIFEST_NAME).unlink(missing_ok=True)


def _save_state(out: Path, state: dict[str, Any]) -> None:
    atomic_write(out / PACK_STATE_NAME, dumps_json(state))


def _estimate_remaining(items: list[SourceItem], at: tuple[int, int], opts: PackOptions) -> int:
    """Approximate bytes the sources from ``at`` on would take (from their headers)."""
    import soundfile as sf

    total = 0
    codec = opts.make_codec()
    for it in items[at[0]:]:
        try:
            info = sf.info(it.path)
        except Exception:
            continue
        frames = int(info.frames * opts.sample_rate / max(1, info.samplerate))
        pieces = opts.pieces(frames)
        if it is items[at[0]]:
            pieces = pieces[at[1]:]
        for p in pieces:
            total += member_bytes(codec.member_bytes(p.length + p.pad)) + member_bytes(900)
            total += _INDEX_BYTES_PER_SAMPLE
    return total


def _result_from_manifest(out: Path, t0: float, *, resumed: bool = False,
                          already_complete: bool = False) -> PackResult:
    doc = Manifest.load(out)
    totals = doc.totals
    return PackResult(
        out=out, manifest=out / MANIFEST_NAME, version_id=doc.version_id, complete=doc.complete,
        shards=len(doc.shards), samples=totals["samples"], bytes=totals["bytes"],
        seconds=totals["seconds"], sources=totals["sources"], sources_packed=totals["sources_packed"],
        rejects=[Reject(r["file"], r["row"], r["reason"]) for r in doc.rejects],
        elapsed=time.monotonic() - t0, seconds_this_run=0.0, resumed=resumed,
        already_complete=already_complete, more_bytes_needed=doc.budget.get("more_bytes_needed", 0),
        label_counts=doc.label_counts,
    )
