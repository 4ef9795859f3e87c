"""``pack(..., engine="dask")`` / ``shardkit pack --engine dask``: sources decoded as tasks on a Dask
cluster (``dask.distributed``), the shards written by the pack on the driver exactly as in a local pack.

How (docs/dask.md says why, and what it costs):

- One task per source runs :func:`shardkit.write.workers.process_source`, the function a local pack's
  workers run, so the samples — and the shard bytes the driver's ShardSetWriter makes of them in
  source order — are those of a local pack, whatever the workers, the order tasks finish in, or a task
  that Dask runs again (after a worker died): the task is a pure function of its source and options.
- Task keys are ``shardkit-<run>-<index>`` (a fresh ``<run>`` per pack); earlier sources have a higher
  priority. At most :data:`IN_FLIGHT` × (worker threads) tasks are submitted and not yet consumed:
  that bounds the finished samples waiting in the cluster's memory for the driver. The driver holds
  one source's samples at a time; they come over Dask's own connections (no shared filesystem: OUT
  may be a bucket prefix).
- No scheduler given: a ``LocalCluster`` of ``workers`` processes (1 thread each) on 127.0.0.1, made
  and closed by the pack. A ``client`` given is used and left open.
- Dask is imported only here, only when this engine is made (``pip install 'shardkit[dask]'``).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from asyncio import CancelledError
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shardkit.errors import PackError, ShardkitError, UsageError
from shardkit.ingest.sources import Reject, SourceItem
from shardkit.write.engines import Engine, Result, check_workers
from shardkit.write.shards import EncodedSample
from shardkit.write.workers import _Context, process_source

logger = logging.getLogger(__name__)

#: tasks submitted and not yet consumed, per worker thread (as the local engine's IN_FLIGHT)
IN_FLIGHT = 8
#: seconds for a first worker to join the scheduler (reaching the scheduler itself: Dask's
#: ``distributed.comm.timeouts.connect``, 30 s, e.g. ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s``)
WORKER_TIMEOUT_S = 60.0
INSTALL = "pip install 'shardkit[dask]'"
#: the local cluster's workers keep glibc's default trimming: Dask's MALLOC_TRIM_THRESHOLD_=65536 hands
#: every decoded recording's buffers back to the kernel and faults them in again (+10–20 % CPU measured)
LOCAL_WORKER_ENV = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def require_distributed() -> Any:
    """``distributed``, or a :class:`UsageError` saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise UsageError(f"--engine dask needs Dask's distributed scheduler, which is not installed: {INSTALL}") \
            from None
    return distributed


class DaskEngine(Engine):
    """Sources decoded as Dask tasks (module docstring).

    - ``client``: a ``distributed.Client`` to use (left open); else ``scheduler`` (``tcp://HOST:PORT``)
      or ``scheduler_file`` (the JSON file ``dask scheduler --scheduler-file`` writes) to connect to
      (and disconnect from at the end); else a ``LocalCluster`` of ``workers`` processes.
    - ``dashboard``: give the local cluster a dashboard (needs bokeh); a scheduler has its own.
    - ``on_ready``: called once connected with one line naming the cluster (workers, address,
      dashboard link): the CLI prints it.
    """

    name = "dask"

    def __init__(self, client: Any = None, *, scheduler: str | None = None, scheduler_file: str | Path | None = None,
                 workers: int = 1, dashboard: bool = False, on_ready: Callable[[str], None] | None = None) -> None:
        distributed = require_distributed()
        if sum(x is not None for x in (client, scheduler, scheduler_file)) > 1:
            raise UsageError("give one of a Dask client, --scheduler or --scheduler-file")
        if client is not None and not isinstance(client, distributed.Client):
            raise UsageError(f"client must be a distributed.Client, got {type(client).__name__}")
        if scheduler is not None and "://" not in str(scheduler):
            raise UsageError(f"--scheduler {scheduler!r}: give the scheduler's address, e.g. tcp://10.0.0.5:8786")
        if scheduler_file is not None:
            scheduler_address(scheduler_file)  # refused now, by name, not after Dask's 60 s wait
        if dashboard and client is None and scheduler is None and scheduler_file is None:
            _require_bokeh()
        self.client, self.scheduler, self.scheduler_file = client, scheduler, scheduler_file
        self.workers, self.dashboard, self.on_ready = check_workers(workers), dashboard, on_ready

    def __repr__(self) -> str:
        where = self.scheduler or self.scheduler_file or ("client" if self.client else f"local×{self.workers}")
        return f"DaskEngine({where})"

    def results(self, items: list[SourceItem], start: int, ctx: _Context, out: Path) -> Iterator[Result]:
        if start >= len(items):
            return
        with self._connect() as client:
            self._announce(client)
            _check_workers(client)
            yield from _ordered(client, items, start, ctx)

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        """The client to submit to: the one given, one connected to the scheduler, or one on a new
        LocalCluster; what this made is closed on the way out."""
        from distributed import Client, LocalCluster

        if self.client is not None:
            yield self.client
            return
        if self.scheduler is None and self.scheduler_file is None:
            import dask

            with dask.config.set(LOCAL_WORKER_ENV):
                cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address="127.0.0.1:8787" if self.dashboard else None)
            try:
                with Client(cluster, set_as_default=False) as client:
                    yield client
            finally:
                cluster.close()
            return
        where = self.scheduler or f"the scheduler file {self.scheduler_file}"
        try:
            address = self.scheduler if self.scheduler_file is None else scheduler_address(self.scheduler_file)
            client = Client(address, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise PackError(f"cannot reach the Dask scheduler at {where} ({exc}): start it (dask scheduler) or "
                            "fix --scheduler / --scheduler-file, then re-run the same command") from None
        try:
            try:
                client.wait_for_workers(1, timeout=WORKER_TIMEOUT_S)
            except TimeoutError:
                raise PackError(f"no Dask worker joined the scheduler at {where} within {WORKER_TIMEOUT_S:.0f} s: "
                                "start workers (dask worker ADDRESS) and re-run the same command") from None
            yield client
        finally:
            client.close()

    def _announce(self, client: Any) -> None:
        info = client.scheduler_info()
        workers = info.get("workers", {})
        line = (f"dask: {len(workers)} workers, {sum(w.get('nthreads', 1) for w in workers.values())} threads "
                f"at {info.get('address', '?')}")
        link = client.dashboard_link if self.dashboard else None
        if link:
            line += f", dashboard {link}"
        logger.info("%s", line)
        if self.on_ready is not None:
            self.on_ready(line)


#: run on every worker (by ``eval``: a builtin, so nothing of shardkit is unpickled there): its version
_PROBE = "__import__('shardkit.write.dask_engine') and __import__('shardkit').__version__"


def _check_workers(client: Any) -> None:
    """Every worker imports this shardkit version, or a PackError that says so. (A task whose function
    a worker cannot unpickle does not fail in Dask: the worker drops its connection and the pack would
    wait for ever; workers that join later are not checked.)"""
    from shardkit._version import __version__

    try:
        versions = client.run(eval, _PROBE)
    except ModuleNotFoundError as exc:
        raise PackError(f"a Dask worker cannot import {exc.name or 'shardkit'} ({exc}): install shardkit "
                        f"{__version__} with its dependencies on every worker, or put it on the workers' PYTHONPATH, "
                        "then re-run the same command") from None
    other = {w: v for w, v in versions.items() if v != __version__}
    if other:
        worker, version = next(iter(other.items()))
        raise PackError(f"Dask worker {worker} runs shardkit {version}, the driver {__version__}: install the same "
                        "version everywhere (the bytes of a shard set are only promised for one version)")


def scheduler_address(scheduler_file: str | Path) -> str:
    """The ``address`` in the JSON file ``dask scheduler --scheduler-file FILE`` writes, or a
    :class:`UsageError` naming the file and what is wrong with it (missing, empty, not JSON, no address)."""
    hint = "start the scheduler with 'dask scheduler --scheduler-file FILE' and pass that FILE"
    try:
        text = Path(scheduler_file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{scheduler_file}: no such scheduler file; {hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{scheduler_file}: cannot read the scheduler file ({exc}); {hint}") from None
    if not text.strip():
        raise UsageError(f"{scheduler_file}: the scheduler file is empty (is the scheduler still starting?); {hint}")
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{scheduler_file}: the scheduler file is not JSON ({exc}); {hint}") from None
    address = doc.get("address") if isinstance(doc, dict) else None
    if not isinstance(address, str) or "://" not in address:
        raise UsageError(f"{scheduler_file}: the scheduler file names no scheduler address (want "
                         f'{{"address": "tcp://HOST:PORT", ...}}); {hint}')
    return address


def _require_bokeh() -> None:
    import importlib.util

    if importlib.util.find_spec("bokeh") is None:
        raise UsageError(f"Dask's dashboard needs bokeh, which is not installed: pip install bokeh (or {INSTALL})")


def _ordered(client: Any, items: list[SourceItem], start: int, ctx: _Context) -> Iterator[Result]:
    """Submit ``items[start:]`` as tasks, at most a window ahead of the one the driver waits for, and
    yield their results in item order; cancel what is left when closed early."""
    run = uuid.uuid4().hex[:12]
    pending: deque = deque()
    todo = iter(range(start, len(items)))
    window = _window(client)

    def submit() -> bool:
        i = next(todo, None)
        if i is None:
            return False
        pending.append((i, client.submit(run_source, items[i], ctx, key=f"shardkit-{run}-{i:08d}", priority=-i)))
        if i % 64 == 0:
            nonlocal window
            window = _window(client)
        return True

    try:
        while len(pending) < window and submit():
            pass
        while pending:
            i, fut = pending.popleft()
            result = _result(fut, items[i])
            fut.release()
            while len(pending) < window and submit():  # keep the workers busy while the driver writes
                pass
            yield i, result
    finally:
        if pending:
            client.cancel([f for _, f in pending])


def _window(client: Any) -> int:
    """Tasks in flight: IN_FLIGHT per worker thread the scheduler knows of (at least one worker's worth)."""
    workers = client.scheduler_info().get("workers", {})
    return IN_FLIGHT * max(1, sum(w.get("nthreads", 1) for w in workers.values()))


def _result(fut: Any, item: SourceItem) -> list[EncodedSample] | Reject:
    """A task's result, or a PackError naming the source (or the lost scheduler) and what to do."""
    try:
        return fut.result()
    except ShardkitError:
        raise
    except ModuleNotFoundError as exc:  # a module process_source needs (numpy, soundfile, soxr, torch …)
        raise PackError(f"{item.rel}: a Dask worker cannot import {exc.name} ({exc}): install shardkit with its "
                        "dependencies on every worker, then re-run the same command") from None
    except (Exception, CancelledError) as exc:  # CancelledError: a BaseException
        if _scheduler_lost(fut, exc):
            raise PackError(f"lost the Dask scheduler while packing ({type(exc).__name__}: {exc}); finished shards "
                            "are kept: restart the scheduler and its workers, then re-run the same command") from None
        raise _task_failed(exc, item) from None  # type: ignore[arg-type]


def _scheduler_lost(fut: Any, exc: BaseException) -> bool:
    """Whether ``exc`` from a task's result means the client lost its scheduler (the task itself did not fail)."""
    from distributed.comm import CommClosedError

    status = str(getattr(getattr(fut, "client", None), "status", "running"))
    return isinstance(exc, (CancelledError, CommClosedError)) or status != "running"


def _task_failed(exc: Exception, item: SourceItem) -> PackError:
    """A PackError for a task that failed on a live cluster, naming the source."""
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return PackError(f"{item.rel}: the Dask workers decoding it died again and again (out of memory? see the "
                         "worker logs); finished shards are kept: fix the cause and re-run the same command")
    return PackError(f"{item.rel}: its Dask task failed ({type(exc).__name__}: {exc}); finished shards are kept: "
                     "re-run the same command to continue")


_prepared: set[str] = set()
_prepare_lock = threading.Lock()


def run_source(item: SourceItem, ctx: _Context) -> list[EncodedSample] | Reject:
    """The Dask task: :func:`process_source`, after the codec's once-per-process preparation
    (``Codec.prepare_worker``, e.g. one torch thread for mel-u8) the first time in this worker. A long
    source's lazily made samples are made here (a result travels to the driver whole)."""
    codec_id = type(ctx.codec).__name__
    if codec_id not in _prepared:
        with _prepare_lock:
            if codec_id not in _prepared:
                ctx.codec.prepare_worker()
                _prepared.add(codec_id)
    result = process_source(item, ctx)
    return result if isinstance(result, Reject) else list(result)
