"""``shardkit pack --engine local|dask [--scheduler ADDR | --scheduler-file F] [--dashboard]``: the options
that choose where sources are decoded, turned into the ``engine=`` of :func:`shardkit.pack`."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from shardkit.write.engines import ENGINES, Engine, LocalEngine
from shardkit_cli.consoles import err


def engine_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--engine --scheduler --scheduler-file --dashboard``; the command receives one ``engine``
    (an :class:`Engine`, made with its ``workers``)."""

    @functools.wraps(command)
    def with_engine(**kwargs: Any) -> Any:
        engine = make_engine(kwargs.pop("engine"), kwargs.pop("scheduler"), kwargs.pop("scheduler_file"),
                             kwargs.pop("dashboard"), kwargs["workers"])
        return command(engine=engine, **kwargs)

    options = [
        click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
                     help="Decode in local processes, or as tasks on a Dask cluster (pip install 'shardkit[dask]')."),
        click.option("--scheduler", metavar="tcp://HOST:PORT",
                     help="--engine dask: the scheduler to use [a local cluster of --workers processes]."),
        click.option("--scheduler-file", type=click.Path(dir_okay=False, path_type=Path),
                     help="--engine dask: the scheduler's file (dask scheduler --scheduler-file F)."),
        click.option("--dashboard", is_flag=True, help="--engine dask: serve Dask's dashboard and print its link."),
    ]
    for option in reversed(options):
        with_engine = option(with_engine)
    return with_engine


def make_engine(engine: str, scheduler: str | None, scheduler_file: Path | None, dashboard: bool,
                workers: int) -> Engine:
    if engine == "local":
        if scheduler or scheduler_file or dashboard:
            raise click.UsageError("--scheduler, --scheduler-file and --dashboard go with --engine dask")
        return LocalEngine(workers)
    from shardkit.write.dask_engine import DaskEngine

    engine = DaskEngine(scheduler=scheduler, scheduler_file=scheduler_file, workers=workers, dashboard=dashboard,
                        on_ready=lambda line: err.print(line, highlight=False))
    if not logging.getLogger().isEnabledFor(logging.INFO):  # no -v: Dask's INFO lines (set on import) are noise
        logging.getLogger("distributed").setLevel(logging.WARNING)
    return engine
