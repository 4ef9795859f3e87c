"""``pack``: sources → decoded int16 samples → deterministic tar shards + indexes + manifest.

The pipeline of one run::

    discover (ingest.sources) → decode + resample + cut + encode (write.workers, in worker processes)
    → ShardSetWriter (write.shardset_writer: shards rolled at shard_size, indexes, budget, state)
    → manifest (format.Manifest), written last

Determinism: sources are processed in one fixed order and results are consumed in that order
whatever the number of workers, so the bytes depend only on the inputs and options. Crash safety:
a shard appears under its final name only when complete, and ``pack-state.json`` (write.state)
records, after every shard, where the next one starts; a re-run continues there and writes the same
bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shardkit.encode import meta as meta_codec
from shardkit.encode.base import Codec
from shardkit.errors import PackError, ShardkitError, UsageError
from shardkit.format import (
    MANIFEST_NAME,
    PACK_STATE_NAME,
    REJECTS_NAME,
    SHARD_PREFIX,
    SHARD_SUFFIX,
    TMP_SUFFIX,
    Manifest,
)
from shardkit.ingest.sources import Reject, SourceItem, discover_sources, vocabulary_of
from shardkit.storage.location import Location
from shardkit.units import parse_size
from shardkit.write.engines import Engine, engine_results, make_context, make_engine
from shardkit.write.lock import PackLock
from shardkit.write.options import PackOptions, fingerprint, options_doc
from shardkit.write.shards import EncodedSample
from shardkit.write.shardset_writer import INDEX_BYTES_PER_SAMPLE, ShardSetWriter
from shardkit.write.state import (
    SOURCES_NAME,
    PackState,
    check_source_stamps,
    clean_unfinished,
    open_state,
    save_source_stamps,
)
from shardkit.write.tar import member_bytes
from shardkit.write.upload import RemoteOut

logger = logging.getLogger(__name__)


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

    out: Path | str          #: the folder, or the prefix URL
    manifest: Path | str
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
    layout: dict[str, Any] = field(default_factory=dict)  #: the manifest's layout (mode, max_seconds, ...)
    padded_seconds_this_run: float = 0.0  #: of ``seconds_this_run``, zero padding (segments mode, tail=pad)
    rejects_in: str = MANIFEST_NAME  #: the file of the set that lists the rejects (``rejects.json`` since format 4)

    @property
    def hours(self) -> float:
        return self.seconds / 3600



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
    storage_options: Mapping[str, Any] | None = None,
    staging: str | os.PathLike[str] | None = None,
    engine: str | Engine = "local",
    client: Any = None,
    follow_symlinks: bool = False,
) -> PackResult:
    """Pack the audio under ``src`` (and/or listed by ``metadata``) into a shard set in ``out``.

    - ``out``: a folder, or an object-store prefix (``s3://bucket/prefix/``, ``gs://…``, ``az://…``;
      credentials and endpoint as for reading, or ``storage_options``). A pack into a prefix is
      written into the local folder ``staging`` (default: one under the temp folder named from the
      URL) and each shard uploaded as it finishes, the manifest last; staging holds about one shard
      (:mod:`shardkit.write.upload`). Everything below said of ``out`` holds for the prefix.
    - ``workers``: decoding processes (output bytes are identical for any number).
    - ``engine``: where sources are decoded (:mod:`shardkit.write.engines`): ``"local"`` (``workers``
      processes here) or ``"dask"`` (tasks on ``client``, a ``distributed.Client`` left open, else on a
      local cluster of ``workers`` processes; ``pip install 'shardkit[dask]'``; docs/dask.md), or an
      :class:`~shardkit.write.engines.Engine` such as ``DaskEngine(scheduler="tcp://host:8786")``. The
      output bytes are the same for every engine.
    - ``budget``: cap on shard + index bytes in ``out``; when the next sample would pass it the pack finishes
      the shard, writes a valid (incomplete) manifest, reports ``more_bytes_needed``: re-run with more.
      With ``workers > 1`` the decoded samples of up to 8 sources per worker also pass through ``*.tmp``
      spill files in ``out`` (deleted as consumed; at most ~8 × workers × the longest recording's PCM):
      leave that much room beyond the budget.
    - ``strict``: raise :class:`PackError` at the first bad source instead of recording a reject.
    - ``resume``: None continues an interrupted pack in ``out`` if there is one; True requires one;
      ``overwrite``: delete a previous shard set in ``out`` first.
    - ``progress``: called with a :class:`PackProgress` after every source.
    - ``device``: where a spectrogram codec (mel-u8) computes (``"cpu"``, ``"cuda"``, ``"cuda:1"``); a GPU
      and the CPU can differ in the last float bits, so a value near a rounding boundary may land one
      quantisation step apart.
    - ``follow_symlinks``: read sources through symlinks that lead outside ``src`` (else rejects; ``discover``).
    """
    t0 = time.monotonic()
    opts = options or PackOptions()
    budget_bytes = parse_size(budget, name="budget") if budget is not None else None
    eng = make_engine(engine, workers, client)
    codec = opts.make_codec()
    codec.check_device(str(device))  # before anything is written
    remote = _remote_out(out, storage_options, staging)
    out_dir = remote.staging if remote is not None else Path(out)
    found = discover_sources(src, metadata, order=opts.order, follow_symlinks=follow_symlinks)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a folder; choose a folder for the shard set")
    job = _Job(opts, codec, found.items, found.rejects, fingerprint(found.items, found.rejects, opts), budget_bytes,
               eng, strict, progress, str(device), t0, (found.columns, found.coerced))
    return _pack_at(job, out_dir, remote, overwrite=overwrite, resume=resume)


@dataclass(frozen=True)
class _Job:
    """What one pack call packs, and how (its arguments, checked)."""

    opts: PackOptions
    codec: Codec
    items: list[SourceItem]
    csv_rejects: list[Reject]
    fingerprint: str
    budget: int | None
    engine: Engine
    strict: bool
    progress: Callable[[PackProgress], None] | None
    device: str
    t0: float
    columns: tuple[dict[str, str], tuple[str, ...]] = ({}, ())  #: the CSV's column types, the coerced ones


def _remote_out(out: str | os.PathLike[str], storage_options: Mapping[str, Any] | None,
                staging: str | os.PathLike[str] | None) -> RemoteOut | None:
    """The object-store prefix ``out`` names, or None for a local folder."""
    if not Location.parse(out).is_local:
        return RemoteOut(str(out), storage_options, staging)
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", str(out)):  # not a folder named "ftp:" in the working directory
        raise UsageError(f"{out}: not a URL shardkit writes to; give a folder or an object-store prefix "
                         "(s3://, gs://, az://)")
    if storage_options or staging is not None:
        raise UsageError(f"{out}: storage_options and staging apply to a pack into object storage "
                         "(s3://, gs://, az://), not to a local folder")
    return None


def _pack_at(job: _Job, out_dir: Path, remote: RemoteOut | None, *, overwrite: bool,
             resume: bool | None) -> PackResult:
    """Lock OUT (or staging) and pack; a pack into a prefix then tidies its staging folder."""
    complete = False
    try:
        with PackLock(out_dir):
            result = _pack_locked(job, out_dir, remote, overwrite=overwrite, resume=resume)
        complete = result.complete
    finally:
        if remote is not None:
            remote.clean_staging(everything=complete)
    return result


def _pack_locked(job: _Job, out_dir: Path, remote: RemoteOut | None, *, overwrite: bool,
                 resume: bool | None) -> PackResult:
    """The pack, with OUT (or staging) locked: decide start / resume / done, then run and finish."""
    uploaded = 0
    if remote is not None:
        remote_state, done = remote.inspect(job.fingerprint, overwrite=overwrite)
        if done is not None:
            if resume:
                raise UsageError(f"{remote.url}: the pack is already complete; nothing to resume")
            remote.drop_stale_state()
            return _result_from_doc(done, remote.url, remote.url + MANIFEST_NAME, job.t0, already_complete=True)
        uploaded = remote.prepare_staging(remote_state, job.fingerprint, overwrite=overwrite)
    state = open_state(out_dir, job.fingerprint, overwrite=overwrite, resume=resume)
    if state is not None and state.complete:
        return _result_from_manifest(out_dir, job.t0, already_complete=True)
    resumed = state is not None
    state = _start_state(out_dir, state, job.fingerprint, job.opts, job.csv_rejects, job.items, job.strict)
    if remote is not None:
        remote.begin(state, uploaded)
    vocabulary = vocabulary_of(job.items)
    writer = ShardSetWriter(out_dir, codec=job.codec, shard_size=job.opts.shard_size, budget=job.budget,
                            vocabulary=vocabulary, layout=job.opts.layout, device=job.device, state=state,
                            on_shard=remote.shard_done if remote is not None else None)
    writer.columns = job.columns
    ctx = make_context(job.opts, job.codec, vocabulary, job.device)
    run = _Run(writer, job.items, job.progress, job.t0, job.strict)
    with _pack_errors(writer, out_dir), engine_results(job.engine, job.items, state.next_item, ctx, out_dir) as rs:
        run.feed(rs)
    return _finish(out_dir, writer, run, job, resumed, remote)


def _start_state(out: Path, state: PackState | None, print_: str, opts: PackOptions, csv_rejects: list[Reject],
                 items: list[SourceItem], strict: bool) -> PackState:
    """A new state saved in a new OUT, or the interrupted pack's, with OUT cleaned past its last shard;
    with ``strict``, a PackError at the first CSV reject."""
    sources = [(it.rel, it.path) for it in items]
    try:
        if state is None:
            state = PackState(print_, {**options_doc(opts), "source_fingerprint": print_},
                              rejects=[r.to_dict() for r in csv_rejects])
            out.mkdir(parents=True, exist_ok=True)
            save_source_stamps(out, sources)
            state.save(out)
        else:
            logger.info("resuming the pack in %s at shard %d (source %d of %d)", out, len(state.shards),
                        state.next_item, len(items))
            check_source_stamps(out, sources)
            clean_unfinished(out, len(state.shards))
    except OSError as exc:
        if isinstance(exc, ShardkitError):
            raise
        raise PackError(f"{out}: cannot write the pack's state ({exc.strerror or exc}); free space or fix "
                        "the permissions and re-run the same command") from exc
    if strict and state.rejects:
        r = state.rejects[0]
        raise PackError(f"{r['file'] or '(row ' + str(r['row']) + ')'}: {r['reason']} (--strict)")
    return state


class _pack_errors:
    """Drop the open shard on any error; an OSError (disk full, permissions) becomes a PackError that
    says the finished shards are kept and how to continue."""

    def __init__(self, writer: ShardSetWriter, out: Path) -> None:
        self.writer, self.out = writer, out

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            return
        self.writer.abort()
        for tmp in self.out.glob(f"{SHARD_PREFIX}[0-9]*{SHARD_SUFFIX}{TMP_SUFFIX}"):  # a shard begun at the
            tmp.unlink(missing_ok=True)  # instant of a Ctrl-C, before the writer held it (seen: SIGINT test)
        if isinstance(exc, OSError) and not isinstance(exc, ShardkitError):
            raise PackError(f"{self.out}: writing the shard set failed ({exc.strerror or exc}); the "
                            f"{self.writer.shards} finished shards are kept: fix the cause (free space?) and "
                            "re-run the same command to continue") from exc


class _Run:
    """The main loop of a pack: results in source order → rejects or samples into the writer."""

    def __init__(self, writer: ShardSetWriter, items: list[SourceItem],
                 progress: Callable[[PackProgress], None] | None, t0: float, strict: bool) -> None:
        self.writer, self.items, self.progress, self.t0, self.strict = writer, items, progress, t0, strict
        self.files_done = writer.state.next_item
        self.seconds = 0.0            #: audio seconds packed by this run
        self.padded = 0.0             #: of them, zero padding appended to last windows (tail=pad)
        self.stopped_at: tuple[int, int] | None = None

    def feed(self, results: Iterator[tuple[int, list[EncodedSample] | Reject]]) -> None:
        state, per_frame = self.writer.state, self.writer.codec.seconds_per_frame
        first_item, first_piece = state.next_item, state.next_piece
        self.report()
        for i, result in results:
            if isinstance(result, Reject):
                self.reject(result, i)
                continue
            for n in range(first_piece if i == first_item else 0, len(result)):
                if not self.writer.add(result[n], next_item=i, next_piece=n):
                    self.stopped_at = (i, n)
                    return
                self.seconds += result[n].frames * per_frame
                self.padded += self.padding(result[n])
            state.sources_packed += 1
            self.files_done = i + 1
            self.report()
        self.writer.close_shard(len(self.items), 0)

    def padding(self, sample: EncodedSample) -> float:
        """Seconds of zero padding in ``sample`` (only segments mode with tail=pad pads)."""
        if self.writer.layout.get("tail") != "pad":
            return 0.0
        return float(meta_codec.decode(sample.meta).get("padded_frames", 0)) / self.writer.codec.sample_rate

    def reject(self, r: Reject, i: int) -> None:
        if self.strict:
            raise PackError(f"{r.file}: {r.reason} (--strict; shards written so far are kept, "
                            "re-run without --strict to record it as a reject and go on)")
        logger.warning("reject %s: %s", r.file, r.reason)
        self.writer.state.rejects.append(r.to_dict())
        self.files_done = i + 1
        self.report()

    def report(self) -> None:
        if self.progress is not None:
            w = self.writer
            self.progress(PackProgress(
                files_done=self.files_done, files_total=len(self.items), seconds_done=self.seconds,
                bytes_written=w.bytes_written, samples=w.samples, shards=w.shards,
                rejects=len(w.state.rejects), elapsed=time.monotonic() - self.t0,
            ))


def _finish(out: Path, writer: ShardSetWriter, run: _Run, job: _Job, resumed: bool,
            remote: RemoteOut | None) -> PackResult:
    """Write the manifest (complete, or stopped at the budget with the state kept), upload it last to a
    prefix; the result."""
    state, more = writer.state, 0
    if run.stopped_at is not None:
        state.next_item, state.next_piece = run.stopped_at
        more = _estimate_remaining(job.items, run.stopped_at, job.opts)
        logger.warning("budget of %d bytes reached after %d shards; about %d more bytes are needed",
                       job.budget, len(state.shards), more)
    complete = run.stopped_at is None
    budget_doc = {"limit_bytes": job.budget, "exhausted": not complete, "more_bytes_needed": more}
    manifest = writer.finish(sources=len(job.items) + len(job.csv_rejects), budget_doc=budget_doc)
    if remote is not None and manifest.rejects_file:  # a version-4 set's rejects table, before its manifest
        data = manifest.rejects_bytes()
        remote.upload(REJECTS_NAME, len(data), hashlib.sha256(data).hexdigest())
    if complete:  # the sources table that 'shardkit update' compares against (docs/format.md §5.2)
        from shardkit.format.sources import record_pack

        if remote is not None:
            remote.wait_uploads()  # the table reads the uploaded indexes
        table = record_pack(out, job.items, manifest, None if remote is None else remote.read_object)
        if remote is not None:
            remote.upload(table["name"], table["bytes"], table["sha256"])
    if remote is not None:
        remote.finish(state, complete)
    if complete:
        (out / PACK_STATE_NAME).unlink(missing_ok=True)
        (out / SOURCES_NAME).unlink(missing_ok=True)
    else:
        state.save(out)
    run.report()
    result = _result_from_manifest(out, job.t0, resumed=resumed)
    if remote is not None:
        result.out, result.manifest = remote.url, remote.url + MANIFEST_NAME
    result.seconds_this_run, result.padded_seconds_this_run = run.seconds, run.padded
    if complete and result.samples == 0:
        first = "; ".join(f"{r.file or '(row ' + str(r.row) + ')'}: {r.reason}" for r in result.rejects[:3])
        raise PackError(f"{result.out}: no sample was packed: all {result.sources} sources were rejected ({first}"
                        f"{'; ...' if len(result.rejects) > 3 else ''}); every reject is listed in {result.rejects_in}")
    return result


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
            total += INDEX_BYTES_PER_SAMPLE
    return total


def _result_from_manifest(out: Path, t0: float, *, resumed: bool = False,
                          already_complete: bool = False) -> PackResult:
    return _result_from_doc(Manifest.load(out), out, out / MANIFEST_NAME, t0, resumed=resumed,
                            already_complete=already_complete)


def _result_from_doc(doc: Manifest, out: Path | str, manifest: Path | str, t0: float, *, resumed: bool = False,
                     already_complete: bool = False) -> PackResult:
    totals = doc.totals
    return PackResult(
        out=out, manifest=manifest, version_id=doc.version_id, complete=doc.complete,
        shards=len(doc.shards), samples=totals["samples"], bytes=totals["bytes"],
        seconds=totals["seconds"], sources=totals["sources"], sources_packed=totals["sources_packed"],
        rejects=[Reject(r["file"], r["row"], r["reason"]) for r in doc.rejects],
        elapsed=time.monotonic() - t0, seconds_this_run=0.0, resumed=resumed,
        already_complete=already_complete, more_bytes_needed=doc.budget.get("more_bytes_needed", 0),
        label_counts=doc.label_counts, layout=dict(doc.layout),
        rejects_in=REJECTS_NAME if doc.rejects_file else MANIFEST_NAME,
    )
