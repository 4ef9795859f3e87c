"""``shardkit update / compact / log / diff``: dataset versions (docs/versions.md). Each command parses,
calls one library function of :mod:`shardkit.versions` and prints."""

from __future__ import annotations

import json
from pathlib import Path

import click

import shardkit
from shardkit.encode import codec_ids
from shardkit.units import format_size
from shardkit_cli.consoles import console, err
from shardkit_cli.engine import engine_options

SEARCH = click.option("--search-path", "search_path", multiple=True, type=click.Path(file_okay=False),
                      help="A folder holding ancestor sets (repeatable; also $SHARDKIT_SEARCH_PATH).")


@click.command()
@click.argument("src", type=click.Path(file_okay=False, path_type=Path))
@click.argument("old", type=click.Path(file_okay=False, path_type=Path))
@click.argument("new", type=click.Path(file_okay=False, path_type=Path))
@click.option("--metadata", type=click.Path(dir_okay=False, path_type=Path), help="BirdCLEF-style CSV.")
@click.option("--workers", default=1, show_default=True,
              help="Decoding processes (--engine dask: of the local cluster; a scheduler brings its own).")
@click.option("--note", default="", help="Kept in the history (shardkit log).")
@click.option("--follow-symlinks", is_flag=True, help="Read sources through symlinks that lead outside SRC.")
@click.option("--sample-rate", type=int, help="Must be OLD's (default: OLD's; as every pack option).")
@click.option("--mode", type=click.Choice(["recordings", "segments"]), help="Must be OLD's.")
@click.option("--shard-size", help="Must be OLD's.")
@click.option("--format", "codec", type=click.Choice(codec_ids()), help="Must be OLD's.")
@SEARCH
@engine_options
def update(src: Path, old: Path, new: Path, metadata: Path | None, workers: int, note: str, follow_symlinks: bool,
           search_path: tuple[str, ...], engine: shardkit.write.Engine, **given: str | int | None) -> None:
    """Write NEW, the next version of OLD for the sources in SRC: new shards for new and changed audio
    only, OLD's shards reused by reference, removals and relabels as overrides. Pack options are OLD's;
    one given that differs is an error."""
    options = {k: v for k, v in given.items() if v is not None}
    r = shardkit.update(src, old, new, metadata=metadata, options=options, workers=workers, note=note,
                        search_path=list(search_path), engine=engine, follow_symlinks=follow_symlinks)
    console.print(f"{r.out}: version {r.version_id} (parent {r.parent}): {r.samples} samples, {r.seconds / 3600:.3f} h")
    console.print(f"sources: {len(r.added)} added, {len(r.changed)} audio changed, {len(r.removed)} removed, "
                  f"{len(r.relabelled)} relabelled, {r.unchanged} unchanged; {len(r.rejects)} rejected")
    console.print(f"shards: {r.new_shards} new ({format_size(r.bytes_written)} written), {r.reused_shards} reused "
                  f"from earlier versions ({format_size(r.bytes_reused)}, not copied)")


@click.command()
@click.argument("shards", type=click.Path(file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace the shard set in OUT.")
@SEARCH
def compact(shards: Path, out: Path, overwrite: bool, search_path: tuple[str, ...]) -> None:
    """Write a self-contained copy of a set: overrides applied, no shard of an earlier version used."""
    r = shardkit.compact(shards, out, overwrite=overwrite, search_path=list(search_path))
    state = "already complete: " if r.already_complete else ""
    console.print(f"{state}{r.out}: version {r.version_id}, {r.samples} samples in {r.shards} shards, "
                  f"{format_size(r.bytes)}")


@click.command(name="log")
@click.argument("shards", type=click.Path(file_okay=False, path_type=Path))
def log_(shards: Path) -> None:
    """The chain of versions of a set, oldest first: samples, hours, classes, note."""
    for h in shardkit.history(shards):
        classes = "" if h["classes"] is None else f"\t{h['classes']} classes as a primary label"
        layers = f"\tlayers: {', '.join(h['layers'])}" if h.get("layers") else ""
        click.echo(f"{h['version_id']}\t{h['samples']} samples\t{h['hours']:.3f} h{classes}\t{h.get('note', '')}"
                   f"{layers}")


@click.command()
@click.argument("a", type=click.Path(file_okay=False, path_type=Path))
@click.argument("b", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@SEARCH
def diff(a: Path, b: Path, as_json: bool, search_path: tuple[str, ...]) -> None:
    """What changed from set A to set B: sources, samples and hours added, removed, changed, relabelled,
    per class; classes new and gone."""
    r = shardkit.diff(a, b, search_path=list(search_path))
    if as_json:
        click.echo(json.dumps(r.to_dict(), indent=1, sort_keys=True))
        return
    for kind in ("added", "removed", "changed", "relabelled", "moved", "unchanged"):
        c = getattr(r, kind)
        console.print(f"{kind:>10}: {c.sources} sources, {c.samples} samples, {c.seconds / 3600:.3f} h")
    for label in sorted(r.per_class):
        console.print(f"  {label}: " + ", ".join(f"{k} {v.samples}" for k, v in sorted(r.per_class[label].items())))
    console.print(f"classes new: {', '.join(r.classes_new) or '-'}; gone: {', '.join(r.classes_gone) or '-'}")
    _print_layers(r.layers)
    err.print(f"(A = {r.a}, B = {r.b})")


def _print_layers(layers: dict) -> None:
    """The label layers part of a diff."""
    if not any(layers.get(k) for k in ("added", "removed", "changed", "unchanged")):
        return
    console.print(f"layers added: {', '.join(layers['added']) or '-'}; removed: {', '.join(layers['removed']) or '-'}; "
                  f"unchanged: {', '.join(layers['unchanged']) or '-'}")
    for name, c in layers["changed"].items():
        top = sorted(c["mean_change"].items(), key=lambda kv: -kv[1])[:5]
        console.print(f"layer {name} changed: {c['rows_added']} rows added, {c['rows_removed']} removed, "
                      f"{c['rows_common']} in both; mean change " + (", ".join(f"{k} {v:.4f}" for k, v in top) or "-"))


COMMANDS = [update, compact, log_, diff]
