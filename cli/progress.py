"""Progress: pack (files, audio hours and h/min, MB written, shards, rejects, ETA) and verify (bytes hashed).

On a terminal, one live rich bar. Anywhere else (``!shardkit pack`` in a notebook cell, a log file, CI)
plain lines: the first source done, then at most one every ``SHARDKIT_PROGRESS_SECONDS`` (default 10) seconds,
and the last one, so a long run shows it is alive without flooding the cell."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

import shardkit
from shardkit.units import format_duration
from shardkit.write.pack import PackProgress

#: seconds between plain progress lines when the console is not a terminal
DEFAULT_LINE_SECONDS = 10.0


class PlainLines:
    """Prints ``text()`` as one plain line on ``console``: on the first call, then at most every
    ``seconds`` (``SHARDKIT_PROGRESS_SECONDS``), and always when ``last`` is true."""

    def __init__(self, console: Console, seconds: float | None = None) -> None:
        self.console = console
        self.seconds = line_seconds() if seconds is None else seconds
        self.next_at, self.printed = 0.0, ""

    def __call__(self, text: Callable[[], str], last: bool = False) -> None:
        now = time.monotonic()
        if (now >= self.next_at or last) and (line := text()) != self.printed:
            self.console.print(line, highlight=False, soft_wrap=True)
            self.next_at, self.printed = now + self.seconds, line


def line_seconds() -> float:
    """``SHARDKIT_PROGRESS_SECONDS`` as a number of seconds >= 0, else :data:`DEFAULT_LINE_SECONDS`."""
    try:
        value = float(os.environ.get("SHARDKIT_PROGRESS_SECONDS", DEFAULT_LINE_SECONDS))
    except ValueError:
        return DEFAULT_LINE_SECONDS
    return value if value >= 0 else DEFAULT_LINE_SECONDS


def pack_line(p: PackProgress) -> str:
    """One plain progress line of a pack."""
    share = f" ({100 * p.files_done / p.files_total:.0f}%)" if p.files_total else ""
    left = p.elapsed / p.files_done * (p.files_total - p.files_done) if 0 < p.files_done < p.files_total else 0
    eta = f", about {format_duration(left)} left" if left else ""
    return (f"pack: {p.files_done}/{p.files_total} files{share}, {p.seconds_done / 3600:.2f} h audio, "
            f"{p.seconds_done / 60 / max(p.elapsed, 1e-9):.2f} h/min, {p.bytes_written / 1e6:.0f} MB, "
            f"{p.shards} shards, {p.rejects} rejects, {p.elapsed:.0f} s elapsed{eta}")


@contextmanager
def pack_progress(console: Console) -> Iterator[Callable[[PackProgress], None]]:
    """A ``progress=`` callback for :func:`shardkit.pack`: a live bar on a terminal, plain lines elsewhere."""
    if not console.is_terminal:
        lines = PlainLines(console)
        # nothing before the first source is done: a pack that fails at once prints just its error
        yield lambda p: p.files_done and lines(lambda: pack_line(p), last=p.files_done >= p.files_total)
        return
    columns = (
        TextColumn("[bold]pack[/bold]"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} files"),
        TextColumn("{task.fields[hours]:.2f} h audio"), TextColumn("{task.fields[rate]:.2f} h/min"),
        TextColumn("{task.fields[mb]:.0f} MB"), TextColumn("{task.fields[shards]} shards"),
        TextColumn("{task.fields[rejects]} rejects"), TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
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
    """A ``progress=`` callback for :func:`shardkit.verify`: a bar of shard bytes hashed on a terminal,
    plain lines elsewhere."""
    total = verify_total(shards)
    if not console.is_terminal:
        lines, done = PlainLines(console), [0]

        def line() -> str:
            return f"verify: {done[0] / 1e6:.1f} of {total / 1e6:.1f} MB hashed ({100 * done[0] / max(total, 1):.0f}%)"

        def advance(n: int) -> None:
            done[0] += n
            lines(line, last=done[0] >= total)

        yield advance
        return
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("hashing", total=total)
        yield lambda n: bar.advance(task, n)
