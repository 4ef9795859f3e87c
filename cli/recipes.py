"""``shardkit folds``: training recipes on a shard set (docs/recipes.md). The command parses, calls
one library function of :mod:`shardkit.read.folds` and prints."""

from __future__ import annotations

from pathlib import Path

import click

import shardkit
from shardkit_cli.consoles import err


@click.command()
@click.argument("shards", type=click.STRING)
@click.option("-k", "k", default=5, show_default=True, help="Number of folds.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CSV to write: key,fold (the fold each key validates in).")
@click.option("--seed", default=0, show_default=True, help="Breaks ties; another seed, other folds.")
@click.option("--group", default="source", show_default=True,
              help="Column kept within one fold ('none': every sample alone).")
@click.option("--stratify", default="primary_label", show_default=True,
              help="Column whose classes are spread evenly ('none': sizes only).")
@click.option("--force", is_flag=True, help="Replace an existing -o file.")
def folds(shards: str, k: int, output: Path, seed: int, group: str, stratify: str, force: bool) -> None:
    """Write K grouped, stratified cross-validation folds of SHARDS to a CSV (no repack, no new version)."""
    result = shardkit.write_folds(shards, output, k, seed=seed, group=None if group == "none" else group,
                                  stratify=None if stratify == "none" else stratify, force=force)
    for f, fold in enumerate(result):
        err.print(f"fold {f}: {len(fold.valid)} valid, {len(fold.train)} train")
    err.print(f"wrote {output}")


COMMANDS = (folds,)
