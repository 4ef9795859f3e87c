"""Progress bars (rich): pack (files, audio hours and h/min, MB written, shards, ETA) and verify (bytes hashed)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

import shardkit
from shardkit.write.pack import PackProgress


@contextmanager
def pack_progress(console: Console) -> Iterator[Callable[[PackProgress], None]]:
    """A ``progress=`` callback for :func:`shardkit.pack` drawing one live bar on ``console``."""
    columns = (
        TextColumn("[bold]pack[/bold]"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} files"),
        TextColumn("{task.fields[hours]:.2f} h audio"), TextColumn("{task.fields[rate]:.2f} h/min"),
        TextColumn("{task.fields[mb]:.0f} MB"), TextColumn("{task.fields[shards]} shards"),
        TextColumn("{task.fields[rejects]} rejects"), TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("pack", total=0, hours=0.0, rate=0.0, mb=0.0, shards=0, rejects=0)

        def update(p: PackProgress) -> None:
            bar.update(task, total=p.files_total, completed=p.files_done, hours=p.seconds_done / 3600,
                       rate=p.seconds_done / 60 / max(p.elapsed, 1e-9), mb=p.bytes_written / 1e6, shards=p.shards,
                       rejects=p.rejects)

        yield update


def verify_total(shards: str | os.PathLike[str]) -> int:
    """The bytes :func:`shardkit.verify` reports to its ``progress`` callback for the set at ``shards``:
    the shards' sizes (:attr:`ShardSetInfo.shard_bytes`). (It hashes the indexes too, without reporting
    them, so the total with them, ``info().bytes``, would leave the bar short of 100 %.)"""
    return shardkit.info(shards).shard_bytes


@contextmanager
def verify_progress(console: Console, shards: str | os.PathLike[str]) -> Iterator[Callable[[int], None]]:
    """A ``progress=`` callback for :func:`shardkit.verify` drawing one bar of shard bytes hashed."""
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("hashing", total=verify_total(shards))
        yield lambda n: bar.advance(task, n)
