"""``shardkit kaggle ...``: publish shard sets as Kaggle datasets and install shardkit offline there.
Each command parses, calls one function of :mod:`shardkit.kaggle`, prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from shardkit.units import format_size
from shardkit_cli.consoles import console, err


@click.group()
def kaggle() -> None:
    """Publish a shard set as a Kaggle dataset (version); read it in notebooks; install offline."""


@kaggle.command()
@click.argument("shards", type=click.Path(exists=True, path_type=Path))
@click.option("--id", "dataset_id", required=True, help="OWNER/SLUG (slug: 6-50 letters, digits, -).")
@click.option("--title", required=True, help="6-50 characters.")
@click.option("--license", "license_name", default="CC0-1.0", show_default=True, help="One of Kaggle's licenses.")
@click.option("--subtitle", help="20-80 characters.")
@click.option("--description", help="Markdown [a summary of the set and how to read it].")
@click.option("--keywords", help="Comma-separated Kaggle tags.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Upload folder [SHARDS-kaggle].")
@click.option("--dry-run", is_flag=True, help="Check and print what would be uploaded; write nothing.")
@click.option("--delta", is_flag=True, help="A set made by 'shardkit update': upload only its new shards; "
              "notebooks attach its parent dataset too [a full snapshot, earlier versions' shards included].")
@click.option("--search-path", "search_path", multiple=True, type=click.Path(file_okay=False),
              help="A folder holding ancestor sets (repeatable; also $SHARDKIT_SEARCH_PATH).")
@click.option("--parent-id", "parent_ids", multiple=True, help="OWNER/SLUG of the dataset holding the parent's "
              "shards, for the description [read from the parent's SET-kaggle folder].")
def prepare(shards: Path, dataset_id: str, title: str, license_name: str, subtitle: str | None,
            description: str | None, keywords: str | None, out: Path | None, dry_run: bool, delta: bool,
            search_path: tuple[str, ...], parent_ids: tuple[str, ...]) -> None:
    """Check SHARDS against Kaggle's rules and lay out its upload folder (shards as .shard files)."""
    from shardkit.kaggle import prepare as run

    plan = run(shards, dataset_id, title, license_name, subtitle=subtitle, description=description,
               keywords=[k for k in (keywords or "").split(",") if k.strip()], out=out, dry_run=dry_run,
               delta=delta, search_path=list(search_path), parent_ids=parent_ids)
    for f in plan.files:
        console.print(f"{f.name}\t{f.bytes}")
    verb = "would upload" if dry_run else "ready to upload"
    console.print(f"{verb}: {len(plan.files)} files, {format_size(plan.total_bytes)} as {plan.dataset_id} "
                  f"({plan.version_id}) from {plan.folder}")
    if plan.written:
        console.print(f"shards linked: {plan.linked}, copied: {plan.copied}; next: shardkit kaggle publish "
                      f"{plan.folder}")
    for note in plan.notes:
        console.print(f"note: {note}")


@kaggle.command()
@click.argument("shards", type=click.Path(exists=True, path_type=Path))
@click.option("--notes", help="Version notes [the diff against the parent version, else the version id and totals].")
@click.option("--delta", is_flag=True, help="Refuse unless the folder was prepared with --delta.")
@click.option("--public", is_flag=True, help="Make a new dataset public (default private).")
@click.option("--attempts", default=3, show_default=True, help="Client calls when an upload fails (each resumes).")
@click.option("--wait-minutes", default=30.0, show_default=True, help="Wait this long while Kaggle is processing.")
@click.option("--poll-seconds", default=30.0, show_default=True, help="How often to ask while it is processing.")
@click.option("--timeout", default=60.0, show_default=True,
              help="Seconds a request may wait for an answer before the upload is resumed.")
def publish(shards: Path, notes: str | None, delta: bool, public: bool, attempts: int, wait_minutes: float,
            poll_seconds: float, timeout: float) -> None:
    """Upload a prepared folder (or the SHARDS-kaggle folder of a set) as a new dataset or a new version."""
    from shardkit.kaggle import publish as run

    def progress(event: str, info: dict[str, Any]) -> None:
        if event == "start":
            err.print(f"{'creating' if info['new'] else 'new version of'} {info['ref']}: {info['files']} files, "
                      f"{format_size(info['bytes'])}")
        elif event == "retry":
            err.print(f"upload incomplete ({info['reason']}); resuming, attempt {info['attempt']}")
        elif event == "busy":
            err.print(f"Kaggle is still processing ({info['status']}); waited {info['waited']:.0f} s")

    r = run(shards, notes, public=public, progress=progress, attempts=attempts, wait_timeout=wait_minutes * 60,
            poll_seconds=poll_seconds, delta=delta, timeout=timeout)
    console.print(f"{'created' if r.new else 'new version of'} {r.ref}: {r.files} files, {format_size(r.bytes)} "
                  f"({r.attempts} attempt{'s' if r.attempts > 1 else ''}, waited {r.waited:.0f} s) {r.url}")
    if not r.new:
        console.print(f"notes: {r.notes}")
    if r.invalid_tags:
        console.print(f"Kaggle left out unknown keywords: {', '.join(r.invalid_tags)}")


@kaggle.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--python", default="3.11", show_default=True, help="The notebook's Python version.")
@click.option("--platform", "platforms", multiple=True, help="Wheel platform tags [manylinux2014_x86_64, "
              "manylinux_2_28_x86_64].")
@click.option("--id", "dataset_id", help="OWNER/SLUG of the wheel dataset [$KAGGLE_USERNAME/shardkit-wheels].")
@click.option("--no-deps", is_flag=True, help="Only shardkit's own wheel.")
def wheelhouse(out: Path, python: str, platforms: tuple[str, ...], dataset_id: str | None, no_deps: bool) -> None:
    """Gather wheels of shardkit and the dependencies a Kaggle image lacks (never torch, torchaudio, numpy)."""
    from shardkit.kaggle import wheelhouse as run
    from shardkit.kaggle.wheels import DEFAULT_PLATFORMS

    w = run(out, python=python, platforms=platforms or DEFAULT_PLATFORMS, dataset_id=dataset_id, deps=not no_deps)
    for name in w.wheels:
        console.print(name)
    console.print(f"{len(w.wheels)} wheels, {format_size(w.bytes)} in {w.folder}; publish it with "
                  f"'shardkit kaggle publish {w.folder}', then in the notebook: {w.install}")
