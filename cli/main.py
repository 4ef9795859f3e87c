"""``shardkit`` commands. Each parses its options, calls one public library function and prints;
a :class:`shardkit.ShardkitError` becomes a one-line message and its exit code in :func:`main`."""

from __future__ import annotations

import functools
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import click
from rich.table import Table
from rich.text import Text

import shardkit
from shardkit.encode import codec_class, codec_ids, pack_options
from shardkit.errors import ShardkitError
from shardkit.units import format_duration, format_size
from shardkit_cli.consoles import console, err, styled
from shardkit_cli.engine import engine_options
from shardkit_cli.progress import pack_progress, verify_progress

#: a shard set's folder, manifest.json, or object-store URL (s3://bucket/prefix/, gs://, az://, http(s)://);
#: credentials and endpoint come from the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...)
LOCATION = click.STRING

#: ``--search-path``: where the ancestors of a derived set are (docs/versions.md)
SEARCH_PATH = click.option("--search-path", "search_path", multiple=True, type=click.Path(file_okay=False),
                           help="Folder holding the parent versions of a derived set (repeatable) [next to SHARDS].")

#: exit code when pack stopped at its budget, or verify found problems
EXIT_INCOMPLETE, EXIT_PROBLEMS = 3, 4


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(shardkit.__version__, prog_name="shardkit")
@click.option("-v", "--verbose", is_flag=True, help="Log what the library does.")
def cli(verbose: bool) -> None:
    """Pack audio into tar shards once; stream int16 batches to the GPU."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")


def codec_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add an option for each codec's own pack settings (:func:`shardkit.encode.pack_options`: mel-u8's
    ``--n-mels --n-fft --hop-length --f-min --f-max --top-db``); the command receives the ones given as
    one ``codec_options`` dict (name → value), empty when none is."""
    declared = pack_options()

    @functools.wraps(command)
    def with_options(**kwargs: Any) -> Any:
        given = {name: value for name in declared if (value := kwargs.pop(name)) is not None}
        return command(codec_options=given, **kwargs)

    for name, (kind, text, codecs) in reversed(declared.items()):
        with_options = click.option(f"--{name.replace('_', '-')}", name, type=kind,
                                    help=f"{', '.join(codecs)}: {text}")(with_options)
    return with_options


@cli.command()
@click.argument("src", type=click.Path(file_okay=False, path_type=Path))
@click.argument("out", type=LOCATION)
@click.option("--metadata", type=click.Path(dir_okay=False, path_type=Path), help="BirdCLEF-style CSV.")
@click.option("--sample-rate", default=32000, show_default=True, help="Hz of the stored audio.")
@click.option("--mode", type=click.Choice(["recordings", "segments"]), default="recordings", show_default=True)
@click.option("--segment-seconds", default=5.0, show_default=True)
@click.option("--hop-seconds", type=float, help="Default: --segment-seconds.")
@click.option("--tail", type=click.Choice(["pad", "keep", "drop"]), default="pad", show_default=True,
              help="Segments mode: the last partial window.")
@click.option("--max-seconds", default=300.0, show_default=True,
              help="Recordings mode: a longer recording is split into equal pieces of at most this length, "
                   "each its own sample (a 30-min recording gives 6 at 300: it is drawn 6x as often); nothing "
                   "is dropped.")
@click.option("--channels", type=click.IntRange(1, 2), default=1, show_default=True)
@click.option("--shard-size", default="1GB", show_default=True)
@click.option("--budget", help="Stop cleanly before OUT holds more than this (e.g. 100GB).")
@click.option("--order", type=click.Choice(["shuffled", "sorted"]), default="shuffled", show_default=True)
@click.option("--workers", default=1, show_default=True,
              help="Decoding processes (--engine dask: of the local cluster; a scheduler brings its own).")
@click.option("--strict", is_flag=True, help="Fail at the first bad source instead of recording it.")
@click.option("--follow-symlinks", is_flag=True,
              help="Read sources through symlinks that lead outside SRC (ln -s /kaggle/input/.../* src/).")
@click.option("--resume", is_flag=True, help="Require an interrupted pack in OUT (re-running resumes anyway).")
@click.option("--overwrite", is_flag=True, help="Delete the shard set in OUT first.")
@click.option("--staging", type=click.Path(file_okay=False, path_type=Path),
              help="OUT is a URL: the local folder shards are written to before upload [a temp folder].")
@click.option("--format", "codec", type=click.Choice(codec_ids()), default="wav16", show_default=True,
              help="The data members' codec: wav16 (int16 PCM .wav), mel-u8 (uint8 log-mel .npy).")
@codec_options
@click.option("--device", default="cpu", show_default=True, help="mel-u8: where spectrograms are computed (cuda).")
@engine_options
def pack(src: Path, out: str, metadata: Path | None, sample_rate: int, mode: str, segment_seconds: float,
         hop_seconds: float | None, tail: str, max_seconds: float, channels: int, shard_size: str,
         budget: str | None, order: str, workers: int, strict: bool, follow_symlinks: bool, resume: bool,
         overwrite: bool, staging: Path | None, codec: str, codec_options: dict[str, Any], device: str,
         engine: shardkit.write.Engine) -> None:
    """Pack the audio in SRC (and/or listed by --metadata) into a shard set in OUT: a folder, or a
    prefix s3://bucket/prefix/ (gs://, az://) that each shard is uploaded to as it finishes."""
    options = shardkit.PackOptions(
        sample_rate=sample_rate, mode=mode, segment_seconds=segment_seconds, hop_seconds=hop_seconds,
        tail=tail, max_seconds=max_seconds, channels=channels, shard_size=shard_size, order=order, codec=codec,
        **codec_class(codec).pack_settings(sample_rate, codec_options))
    with pack_progress(err) as progress:
        r = shardkit.pack(src, out, metadata=metadata, options=options, workers=workers, budget=budget,
                          strict=strict, resume=resume or None, overwrite=overwrite, progress=progress,
                          device=device, staging=staging, engine=engine, follow_symlinks=follow_symlinks)
    _print_pack_result(r)
    if not r.complete:
        sys.exit(EXIT_INCOMPLETE)


def _print_pack_result(r: shardkit.PackResult) -> None:
    rate = r.seconds_this_run / 3600 / max(r.elapsed / 60, 1e-9)
    state = "already complete" if r.already_complete else ("complete" if r.complete else "INCOMPLETE")
    console.print(f"{state}: {r.samples} samples, {r.hours:.2f} h of audio, {r.shards} shards, {format_size(r.bytes)} "
                  f"in {r.out}  ({r.version_id})")
    if not r.already_complete:
        padding = f", {r.padded_seconds_this_run / 3600:.2f} h of it zero padding (--tail pad)" \
            if r.padded_seconds_this_run else ""
        console.print(f"packed {r.seconds_this_run / 3600:.2f} h in {format_duration(r.elapsed)} "
                      f"({rate:.1f} audio h/min){padding}")
    if r.layout.get("mode") == "recordings" and r.samples > r.sources_packed:
        console.print(f"{r.samples - r.sources_packed} more samples than recordings: recordings longer than "
                      f"--max-seconds {r.layout.get('max_seconds'):g} were split into equal pieces, each its own "
                      "sample (drawn once per piece when training)")
    if r.rejects:
        console.print(styled(f"{len(r.rejects)} sources rejected", "yellow", f" (listed in {r.rejects_in}):"))
        for rej in r.rejects[:20]:
            console.print(f"  {rej.file or '-'}{f' (row {rej.row})' if rej.row else ''}: {rej.reason}")
    if not r.complete:
        console.print(styled("budget reached", "red", f": about {format_size(r.more_bytes_needed)} more are needed; "
                                                     "re-run with a larger --budget to continue"))


@cli.command()
@click.argument("shards", type=LOCATION)
@click.option("--top", default=10, show_default=True, help="How many classes to list.")
def info(shards: str, top: int) -> None:
    """Summarise a shard set: samples, hours, classes, shards, bytes, parameters."""
    i = shardkit.info(shards)
    t = Table(show_header=False, box=None)
    for k, v in [("shard set", str(i.root)), ("version", i.version_id), ("format", str(i.format_version)),
                 ("complete", "yes" if i.complete else f"no (about {format_size(i.more_bytes_needed)} more needed)"),
                 ("stored as", f"{i.codec}, {i.sample_rate} Hz, {i.channels} ch"
                  + (", log-mel " + ", ".join(f"{k}={v}" for k, v in (i.mel or {}).items()) if i.mel else "")),
                 ("layout", ", ".join(f"{k}={v}" for k, v in i.layout.items())),
                 ("samples", f"{i.samples}"),
                 ("duration", f"{i.hours:.3f} h ({format_duration(i.seconds)})" + _padding_note(i.layout)),
                 ("shards", f"{i.shards}, {format_size(i.bytes)}"),
                 ("classes", f"{i.classes} in the vocabulary, {len(i.label_counts)} as a primary label"),
                 ("sources", f"{i.sources_packed} packed of {i.sources}, {i.reject_count} rejected")]:
        t.add_row(Text(k, style="bold"), v)
    if i.parent:  # a version made by 'shardkit update' (docs/versions.md)
        t.add_row(Text("parent", style="bold"), f"{i.parent} ({i.inherited_shards} of its shards used where they are)"
                  if not i.missing_shards else f"{i.parent} ({i.inherited_shards} of its shards used; not found: "
                  f"{', '.join(i.missing_shards[:5])}{' …' if len(i.missing_shards) > 5 else ''}; pass --search-path "
                  "to ls/verify, or put the parent set next to this one)")
    console.print(t)
    if i.label_counts:
        console.print("top classes: " + ", ".join(f"{k} {v}" for k, v in i.top_classes(top)))


def _padding_note(layout: dict) -> str:
    """What the duration of a segments set with tail=pad includes (the manifest counts stored frames)."""
    if layout.get("mode") == "segments" and layout.get("tail") == "pad":
        return ", incl. the zero padding of each recording's last window (tail=pad)"
    return ""


@cli.command(name="ls")
@click.argument("shards", type=LOCATION)
def ls_(shards: str) -> None:
    """List samples: key, shard, seconds, labels, source."""
    for s in shardkit.list_samples(shards):
        labels = ",".join(x for x in (s.primary_label, *s.secondary_labels) if x)
        click.echo(f"{s.key}\t{s.shard}\t{s.seconds:.3f}\t{labels}\t{s.source}")


@cli.command()
@click.argument("shards", type=LOCATION)
@click.argument("key")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the .wav (.npy for mel-u8 sets) here.")
@click.option("--meta", is_flag=True, help="Print the sample's metadata instead.")
@click.option("--force", is_flag=True, help="Replace an existing -o file.")
def cat(shards: str, key: str, output: Path | None, meta: bool, force: bool) -> None:
    """Extract one sample by KEY as a .wav file, or .npy for mel-u8 sets (to -o, or stdout when it is
    not a terminal)."""
    if output is not None and not meta:
        s = shardkit.extract_sample(shards, key, output, force=force)
        err.print(f"wrote {output} ({format_size(len(s.data))}, from {s.shard})")
        return
    s = shardkit.read_sample(shards, key)
    if meta:
        console.print_json(data=s.meta)
    elif sys.stdout.isatty():
        raise click.UsageError(f"refusing to write .{s.ext} bytes to a terminal; use -o FILE or a pipe")
    else:
        sys.stdout.buffer.write(s.data)


@cli.command()
@click.argument("shards", type=LOCATION)
@click.argument("key")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="PNG to write [KEY.png].")
@click.option("--force", is_flag=True, help="Replace an existing -o file.")
def show(shards: str, key: str, output: Path | None, force: bool) -> None:
    """Draw sample KEY's waveform and log-mel (labels, seconds, Hz) into a PNG."""
    err.print(f"wrote {shardkit.show_sample(shards, key, output, force=force)}")


@cli.command()
@click.argument("shards", type=LOCATION)
@SEARCH_PATH
def verify(shards: str, search_path: tuple[str, ...]) -> None:
    """Check every shard and index against the manifest and the format spec (hashes, tar headers, index
    offsets and labels, everything a reader checks); name damaged samples."""
    with verify_progress(err, shards) as progress:
        report = shardkit.verify(shards, progress=progress, search_path=list(search_path))
    if report.ok:
        console.print(f"OK: {report.shards} shards, {report.samples} samples, "
                      f"{format_size(report.bytes_checked)} checked")
        return
    for p in report.problems:
        console.print(styled("BAD", "red", f" {p}"), highlight=False)
    n = len(report.problems)
    console.print(f"{n} problem{'s' if n != 1 else ''} in {report.shards} shard{'s' if report.shards != 1 else ''}")
    for line in report.advice:
        console.print(f"to fix: {line}", highlight=False)
    sys.exit(EXIT_PROBLEMS)


@cli.command()
@click.argument("shards", type=click.Path(exists=True, path_type=Path))
@click.option("--all", "force", is_flag=True, help="Rebuild every index, not only damaged ones.")
def reindex(shards: Path, force: bool) -> None:
    """Rebuild missing or damaged shard indexes from their shards (each shard must pass its sha256)."""
    r = shardkit.reindex(shards, force=force)
    for name in r.rebuilt:
        console.print(f"rebuilt {name}")
    console.print(f"{len(r.rebuilt)} indexes rebuilt, {len(r.kept)} already matched the manifest")


@cli.command(name="plan")
@click.argument("shards", type=LOCATION)
@click.option("--world-size", default=1, show_default=True, help="DDP ranks.")
@click.option("--workers", default=2, show_default=True, help="DataLoader workers per rank.")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--crop-seconds", type=float, help="The crops' length (a recordings set's reads need it; --grid too).")
@click.option("--crops-per-recording", default=1, show_default=True)
@click.option("--validation", is_flag=True, help="shuffle=False: every sample once (partial=keep).")
@click.option("--partial", type=click.Choice(["pad", "drop", "keep"]), help="Default: pad, keep with --validation.")
@click.option("--keys", "keys", help="Read only these samples: a file of one key per line (e.g. a fold's).")
@click.option("--where", help="Read only the samples this expression over the set's columns keeps, e.g. "
              "\"rating >= 3 and primary_label != 'noise'\" (docs/recipes.md).")
@click.option("--weights", help="Draw by weight: 'balanced', or a power p (weight ∝ count(primary_label)^-p).")
@click.option("--samples-per-epoch", type=int, help="Items drawn per epoch (default: the subset's items).")
@click.option("--targets", help="A label layer of the set to train on (docs/labels.md): how many samples it covers.")
@click.option("--grid", is_flag=True, help="crops='grid': every --crop-seconds window of every sample, in order.")
@click.option("--tail", type=click.Choice(["pad", "drop"]), default="pad", show_default=True,
              help="--grid: a sample's last, partial window.")
@SEARCH_PATH
def plan_(shards: str, world_size: int, workers: int, batch_size: int, validation: bool, weights: str | None,
          grid: bool, search_path: tuple[str, ...], **options: Any) -> None:
    """Dry run of a read: per-rank and per-worker batches, padding and draws of an epoch of a ShardDataset
    with these options (subsets, weighted draws, label layers too); warns about what would go wrong.

    The counts are the same for every epoch and seed, so there is no --epoch option."""
    p = shardkit.plan_split(shards, world_size=world_size, workers=workers, batch_size=batch_size,
                            shuffle=not (validation or grid), weights=_weights(weights),
                            crops="grid" if grid else "random", search_path=list(search_path) or None, **options)
    t = Table("rank", "samples", "batches", "padded", "batches per worker", box=None)
    for r in p.ranks:
        t.add_row(str(r["rank"]), str(r["samples"]), str(r["batches"]), str(r["padded"]),
                  " ".join(map(str, r["worker_batches"])))
    console.print(f"every epoch: {p.items} items, partial={p.partial}, batch {batch_size}", highlight=False)
    for line in _plan_lines(p):
        console.print(line, highlight=False)
    console.print(t)
    if workers == 0:  # DataLoader(num_workers=0): valid, but say who the one "worker" is
        console.print("workers 0: the training process reads every batch itself (DataLoader num_workers=0); "
                      "the column above is that one process")
    for w in p.warnings:
        console.print(styled("warning:", "yellow", f" {w}"))


def _weights(text: str | None) -> str | float | None:
    """``--weights``: a number is a power; anything else goes to the library as it is ('balanced', or refused)."""
    try:
        return None if text is None else float(text)
    except ValueError:
        return text


def _plan_lines(p: shardkit.SplitPlan) -> list[str]:
    """What the recipe chose: the subset, the draws, the label layer."""
    lines = []
    if p.samples != p.set_samples:
        lines.append(f"subset: {p.samples} of the set's {p.set_samples} samples ({p.subset_items} items)")
    if p.per_sample is None:
        lines.append(f"windows: {p.items} of --crop-seconds each over {p.samples} samples (--grid)")
    elif p.drawn:
        lo, hi = p.per_sample
        lines.append(f"draws: {p.items} per epoch from {p.subset_items} items; a sample gets {lo:.3g} to {hi:.3g} "
                     "of them (expected)")
    if p.targets is not None:
        lines.append(f"targets {p.targets!r}: rows for {p.targets_samples} of the {p.samples} samples read "
                     f"(the others: targets_mask False); {p.classes} classes")
    return lines


@cli.command()
@click.option("--out", "--workdir", "workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the corpus and shards go [demo/ in shardkit's cache folder, $SHARDKIT_CACHE_DIR].")
@click.option("--workers", default=2, show_default=True)
@click.option("--epochs", default=1, show_default=True)
def demo(workdir: Path | None, workers: int, epochs: int) -> None:
    """Make a small labelled corpus of real ogg/flac/mp3/wav files, pack it, stream it through
    DataLoader workers and the mel stage, and print throughput."""
    from shardkit.demo import default_workdir, run_demo

    workdir = workdir if workdir is not None else default_workdir()
    err.print(f"demo: working in {workdir} (--out to choose)", highlight=False)
    with pack_progress(err) as progress:
        r = run_demo(workdir, workers=workers, epochs=epochs, progress=progress)
    for line in r.lines():
        console.print(line)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it unwinds like Ctrl-C (open shard dropped,
    state kept) instead of dying mid-write."""


#: the signal whose exception waits for the program to leave a finalizer (see :func:`_on_signal`)
_PENDING: list[int] = []


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """SIGINT → KeyboardInterrupt, SIGTERM → :class:`_Terminated`, raised where the program is — except
    inside a ``__del__`` (a library object's finaliser), where Python prints the exception as "Exception
    ignored" with its traceback and drops it, so the signal would be lost: there it is raised again 10 ms
    later (SIGALRM), until the program is out of the finaliser."""
    if signum == signal.SIGALRM:
        if not _PENDING:
            return
        signum = _PENDING.pop()
    if _in_finalizer(frame):
        _PENDING[:] = [signum]
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        return
    raise _Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _in_finalizer(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def install_signal_handlers() -> None:
    """Ctrl-C and SIGTERM unwind the program like an exception (open shard dropped, state kept)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
        signal.signal(sig, _on_signal)


from shardkit_cli.versions import COMMANDS as _VERSIONS  # noqa: E402 - registered here, defined there

for _command in _VERSIONS:
    cli.add_command(_command)

from shardkit_cli.recipes import COMMANDS as _RECIPES  # noqa: E402 - registered here, defined there

for _command in _RECIPES:
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point: run the CLI, turning shardkit errors into one line + exit code.

    Ctrl-C exits 130 and SIGTERM 143 (128 + the signal), each after the library has cleaned up, with
    the line that says how to continue."""
    install_signal_handlers()
    try:
        cli(standalone_mode=False, prog_name="shardkit")
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        interrupt = exc if isinstance(exc, KeyboardInterrupt) else exc.__cause__ or exc.__context__
        if not isinstance(interrupt, KeyboardInterrupt):
            err.print("aborted")
            sys.exit(130)
        err.print("interrupted; re-run the same command to continue where it stopped")
        sys.exit(143 if isinstance(interrupt, _Terminated) else 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ShardkitError as exc:
        err.print(styled("error:", "red", f" {exc}"), highlight=False)
        sys.exit(exc.exit_code)


from shardkit_cli.kaggle import kaggle as _kaggle  # noqa: E402
from shardkit_cli.labels import labels as _labels  # noqa: E402

cli.add_command(_kaggle)
cli.add_command(_labels)

if __name__ == "__main__":
    main()
