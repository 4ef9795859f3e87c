"""``shardkit labels add / ls / rm``: label layers (docs/labels.md). Each command parses, calls one
library function of :mod:`shardkit.labels` and prints."""

from __future__ import annotations

from pathlib import Path

import click

import shardkit.labels
from shardkit.units import format_size
from shardkit_cli.consoles import console, err

SEARCH = click.option("--search-path", "search_path", multiple=True, type=click.Path(file_okay=False),
                      help="A folder holding ancestor sets (repeatable; also $SHARDKIT_SEARCH_PATH).")


@click.group()
def labels() -> None:
    """Label layers: soft or pseudo labels as new versions of a set that never rewrite its audio."""


@labels.command()
@click.argument("shards", type=click.Path(file_okay=False, path_type=Path))
@click.argument("new", type=click.Path(file_okay=False, path_type=Path))
@click.argument("table", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="The layer's name (letters, digits, _ and -).")
@click.option("--window-seconds", type=float,
              help="Rows are windows of this many seconds of their source (source + start_seconds or row_id).")
@click.option("--hop-seconds", type=float, help="Windows start at multiples of this [--window-seconds].")
@click.option("--on-error", type=click.Choice(["raise", "skip"]), default="raise", show_default=True,
              help="A bad row: stop and write nothing, or drop it and count it.")
@click.option("--replace", is_flag=True, help="Replace a layer of the same name.")
@click.option("--note", default="", help="Kept in the history (shardkit log).")
@SEARCH
def add(shards: Path, new: Path, table: Path, name: str, window_seconds: float | None, hop_seconds: float | None,
        on_error: str, replace: bool, note: str, search_path: tuple[str, ...]) -> None:
    """Write NEW: the set SHARDS plus the label layer NAME from TABLE (CSV or Parquet with a 'key' column,
    'source' + 'start_seconds' columns, or a BirdCLEF submission's 'row_id'; one column per class)."""
    r = shardkit.labels.add_labels(shards, new, name=name, table=table, window_seconds=window_seconds,
                                   hop_seconds=hop_seconds, on_error=on_error, replace=replace, note=note,
                                   search_path=list(search_path))
    layer = r.layer
    assert layer is not None
    what = (f"{layer.window_seconds:g} s windows every {layer.hop_seconds:g} s" if layer.kind == "windows"
            else "per sample")
    console.print(f"{r.out}: version {r.version_id} (parent {r.parent}): layer {layer.name}, {r.rows} rows "
                  f"({what}), {len(layer.classes)} classes")
    console.print(f"written: {format_size(r.bytes_written)} (no audio; the parent's shards are used where they are)")
    if r.skipped:
        err.print(f"{r.skipped} bad rows skipped (--on-error skip):")
        for line in r.problems:
            err.print(f"  {line}", highlight=False)


@labels.command(name="ls")
@click.argument("shards", type=click.Path(file_okay=False, path_type=Path))
def ls_(shards: Path) -> None:
    """List the label layers of a set: name, kind, rows, classes, bytes."""
    for e in shardkit.labels.list_labels(shards):
        what = f"windows {e.window_seconds:g}s/{e.hop_seconds:g}s" if e.kind == "windows" else "samples"
        click.echo(f"{e.name}\t{what}\t{e.rows} rows\t{len(e.classes)} classes\t{format_size(e.bytes)}\t{e.note}")


@labels.command(name="rm")
@click.argument("shards", type=click.Path(file_okay=False, path_type=Path))
@click.argument("new", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", required=True, help="The layer to leave out.")
@click.option("--note", default="", help="Kept in the history (shardkit log).")
@SEARCH
def rm(shards: Path, new: Path, name: str, note: str, search_path: tuple[str, ...]) -> None:
    """Write NEW: the set SHARDS without its label layer NAME."""
    r = shardkit.labels.remove_labels(shards, new, name=name, note=note, search_path=list(search_path))
    console.print(f"{r.out}: version {r.version_id} (parent {r.parent}): layers "
                  f"{', '.join(e.name for e in r.layers) or '-'}; written {format_size(r.bytes_written)}")
