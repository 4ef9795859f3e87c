"""Where a pack's sources are decoded: an :class:`Engine` turns the sources into their encoded samples
and hands them to the writer **in source order**, whatever order the work finishes in.

Every engine runs the same per-source function (:func:`shardkit.write.workers.process_source`: decode,
resample, cut, encode), so the samples, and so the shard bytes, are the same whichever engine made
them; :func:`shardkit.pack` drives the one :class:`~shardkit.write.shardset_writer.ShardSetWriter`
(shard rolling, budget, resumable state, manifest last) on the driver with what the engine yields.

- :class:`LocalEngine`: ``workers`` processes on this machine (``--engine local``, the default).
- :class:`shardkit.write.dask_engine.DaskEngine`: tasks on a Dask cluster (``--engine dask``,
  ``pip install 'shardkit[dask]'``; docs/dask.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shardkit.encode.base import Codec
from shardkit.errors import UsageError
from shardkit.ingest.sources import Reject, SourceItem
from shardkit.write.options import PackOptions
from shardkit.write.shards import EncodedSample
from shardkit.write.workers import _Context, ordered_results

#: what an engine yields per source: its index in the pack's order and its samples, or why it was rejected
Result = tuple[int, "list[EncodedSample] | Reject"]

ENGINES = ("local", "dask")


class Engine(ABC):
    """Decodes sources and yields ``(i, samples | Reject)`` for ``items[start:]`` in order of ``i``."""

    name: str = ""

    @abstractmethod
    def results(self, items: list[SourceItem], start: int, ctx: _Context, out: Path) -> Iterator[Result]:
        """Process ``items[start:]`` (``ctx``: the options, codec and label numbers; ``out``: the local
        folder the shards go to, usable for scratch files named ``*.tmp``) and yield each result in
        item order. Closing the iterator early (budget reached, ``--strict``, an error) stops the work
        and frees what the engine started."""


@contextmanager
def engine_results(engine: Engine, items: list[SourceItem], start: int, ctx: _Context,
                   out: Path) -> Iterator[Iterator[Result]]:
    """``engine.results(...)``, closed on the way out (early too: a budget, ``--strict``, an error), so
    that the engine stops its work and frees its processes or cluster at once."""
    results = engine.results(items, start, ctx, out)
    try:
        yield iter(results)
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def make_context(opts: PackOptions, codec: Codec, vocabulary: list[str], device: str = "cpu") -> _Context:
    """The ``ctx`` an engine hands every source: the pack options, their ``codec``, each label of
    ``vocabulary`` numbered by its position, and the ``device`` a spectrogram codec computes on."""
    return _Context(opts, codec, {label: i for i, label in enumerate(vocabulary)}, str(device))


class LocalEngine(Engine):
    """``workers`` decoding processes on this machine (1: in the pack's own process)."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        self.workers = check_workers(workers)

    def results(self, items: list[SourceItem], start: int, ctx: _Context, out: Path) -> Iterator[Result]:
        return ordered_results(items, start, ctx, self.workers, out)

    def __repr__(self) -> str:
        return f"LocalEngine(workers={self.workers})"


def check_workers(workers: Any) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UsageError(f"workers must be a positive integer, got {workers!r}")
    return workers


def make_engine(engine: str | Engine, workers: int, client: Any = None) -> Engine:
    """The engine ``pack(engine=..., workers=..., client=...)`` asks for: ``"local"``, ``"dask"`` (on
    ``client``, a ``distributed.Client``, else on a local cluster of ``workers`` processes), or an
    :class:`Engine` object as it is."""
    check_workers(workers)
    if isinstance(engine, Engine):
        if client is not None:
            raise UsageError("client= goes with engine='dask'; an Engine object brings its own")
        return engine
    if engine == "dask":
        from shardkit.write.dask_engine import DaskEngine

        return DaskEngine(client, workers=workers)
    if engine == "local":
        if client is not None:
            raise UsageError("client= is a Dask client: pass engine='dask' with it")
        return LocalEngine(workers)
    raise UsageError(f"engine must be one of {', '.join(ENGINES)} (or an Engine object), got {engine!r}")
