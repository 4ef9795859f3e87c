"""``update``: a new version of a shard set that reuses its parent's unchanged shards (format §5.1).

The sources under SRC (folder scan or metadata CSV, as for ``pack``) are compared with OLD's sources
table (:mod:`shardkit.format.sources`) by path, size, sha256, labels and other CSV columns:

- new or changed audio (or a source whose key stem a fresh pack would now give differently) is packed
  into new shards in NEW, numbered after the parent's highest shard;
- unchanged sources keep their samples in OLD's shards, which NEW's manifest lists by name and sha256
  with their ``origin`` (no byte is copied);
- changed labels or columns of unchanged audio become ``relabels``; samples of removed or changed
  sources in reused shards become tombstones (``removed``); a reused shard left without a live sample
  is dropped.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shardkit.errors import OutputConflictError, UsageError
from shardkit.files import make_folder
from shardkit.format import LINEAGE_VERSION, MANIFEST_NAME, PACK_STATE_NAME, Manifest, ShardEntry, is_shard_name
from shardkit.format.sources import Table, fingerprints, labels_of, load_table, record, write_table
from shardkit.ingest.sources import Reject, SourceItem, discover, vocabulary_of
from shardkit.read.shardset import ShardSet
from shardkit.write.engines import Engine, make_engine
from shardkit.write.options import PackOptions, fingerprint, options_doc

log = logging.getLogger(__name__)
#: versions kept in a manifest's ``history`` (the oldest are dropped)
MAX_HISTORY = 100


@dataclass
class UpdateResult:
    """What :func:`update` wrote. Source lists hold paths relative to SRC."""

    out: Path
    version_id: str
    parent: str
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)      #: audio changed: packed again
    removed: list[str] = field(default_factory=list)
    relabelled: list[str] = field(default_factory=list)
    unchanged: int = 0
    new_shards: int = 0
    reused_shards: int = 0
    bytes_written: int = 0      #: new shards + indexes + sources table + manifest
    bytes_reused: int = 0       #: the parent's shards + indexes NEW lists (not copied)
    samples: int = 0
    seconds: float = 0.0
    rejects: list[Reject] = field(default_factory=list)
    elapsed: float = 0.0


@dataclass
class _Plan:
    """Sources sorted into what happens to them."""

    todo: list[SourceItem] = field(default_factory=list)          #: to pack (new or changed)
    keep: list[SourceItem] = field(default_factory=list)          #: unchanged audio, maybe relabelled
    relabelled: set[str] = field(default_factory=set)
    prints: dict[str, tuple[int, str]] = field(default_factory=dict)


def options_of(doc: dict[str, Any]) -> PackOptions:
    """The :class:`PackOptions` a manifest's ``pack`` map records."""
    from dataclasses import fields

    from shardkit.encode.mel_config import MelConfig

    kw = {f.name: doc[f.name] for f in fields(PackOptions) if f.name in doc}
    if isinstance(kw.get("mel"), dict):
        kw["mel"] = MelConfig.from_dict(kw["mel"])
    return PackOptions(**kw)


def _check_options(opts: PackOptions, old: Manifest, where: Path) -> None:
    theirs = {k: v for k, v in old.pack.items() if k != "source_fingerprint"}
    ours = options_doc(opts)
    diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    if diff:
        raise UsageError(f"{where}: was packed with other options ({', '.join(f'{k}={theirs.get(k)!r}' for k in diff)}"
                         f"; given {', '.join(f'{k}={ours.get(k)!r}' for k in diff)}); an update must use its parent's "
                         "options: leave them out to use OLD's")


def _plan(items: list[SourceItem], table: Table) -> _Plan:
    plan = _Plan()
    prints = fingerprints([it.path for it in items])
    for it, fp in zip(items, prints, strict=True):
        plan.prints[it.rel] = fp
        rec = table.get(it.rel)
        expected_keys = [f"{it.stem}-{n:04d}" for n in range(len(rec["keys"]))] if rec else []
        if rec is None or (rec["bytes"], rec["sha256"]) != fp or rec["keys"] != expected_keys:
            plan.todo.append(it)
            continue
        plan.keep.append(it)
        if labels_of(rec) != labels_of(it):
            plan.relabelled.add(it.rel)
    return plan


def _prepare_out(new: Path, old: Path) -> None:
    if new.resolve() == old.resolve():
        raise UsageError(f"{new}: NEW must be another folder than OLD (OLD stays as it is)")
    if new.exists():
        names = [n for n in os.listdir(new) if n != ".shardkit.lock"]
        if (new / MANIFEST_NAME).exists():
            raise OutputConflictError(f"{new}: holds a shard set already; choose a new folder for the version")
        from shardkit.write.state import is_shard_set_file

        if any(not is_shard_set_file(n) for n in names):
            raise OutputConflictError(f"{new}: holds other files; choose an empty folder for the new version")
        for n in names:  # an interrupted update: start again
            (new / n).unlink()
    make_folder(new, "folder for the new version")


def update(
    src: str | os.PathLike[str],
    old: str | os.PathLike[str],
    new: str | os.PathLike[str],
    *,
    metadata: str | os.PathLike[str] | None = None,
    options: PackOptions | dict[str, Any] | None = None,
    workers: int = 1,
    note: str = "",
    search_path: Sequence[str | os.PathLike[str]] | None = None,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    engine: str | Engine = "local",
    client: Any = None,
    follow_symlinks: bool = False,
) -> UpdateResult:
    """Write NEW, the next version of the shard set OLD, for the sources under ``src`` (and/or listed
    by ``metadata``), as the module docstring says. ``options`` must equal OLD's (default: OLD's; a
    dict: OLD's with those fields replaced, e.g. ``{"sample_rate": 32000}``);
    ``workers``, ``engine``, ``client``: where the new sources are decoded, as for :func:`shardkit.pack`
    (``"local"`` processes, ``"dask"``, or an :class:`~shardkit.write.engines.Engine`; same bytes);
    ``note``: kept in the history; ``search_path``: where OLD's ancestors' shards are (``read.lineage``);
    ``progress(done, total)``: called after each source packed; ``follow_symlinks``: as for ``pack``.
    """
    t0 = time.monotonic()
    old_root, new_dir = Path(old), Path(new)
    eng = make_engine(engine, workers, client)
    old_m = Manifest.load(old_root)
    opts = options if isinstance(options, PackOptions) else options_of({**old_m.pack, **(options or {})})
    _check_options(opts, old_m, old_root)
    items, csv_rejects = discover(src, metadata, order=opts.order, follow_symlinks=follow_symlinks)
    table = load_table(old_root, old_m)
    plan = _plan(items, table)
    with ShardSet.open(old_root, search_path=search_path) as old_set:
        old_rows = [(k, old_set.shard_names[int(s)], int(f))
                    for k, s, f in zip(old_set.keys, old_set.shard_id, old_set.frames, strict=True)]
    _prepare_out(new_dir, old_root)
    from shardkit.versions.update_write import write_new_shards

    vocabulary = vocabulary_of(items)
    first = 1 + max((int(e.name[6:-4]) for e in old_m.shards if is_shard_name(e.name)), default=-1)
    written = write_new_shards(plan.todo, new_dir, opts, vocabulary, first, eng, device, progress)
    result = UpdateResult(out=new_dir, version_id="", parent=old_m.version_id, **_changes(plan, table, items, written),
                          rejects=[*csv_rejects, *written.rejects])
    manifest = _manifest(old_m, plan, table, old_rows, written, items, csv_rejects, opts, vocabulary, note, new_dir)
    (new_dir / PACK_STATE_NAME).unlink(missing_ok=True)
    result.version_id, result.samples = manifest.version_id, manifest.samples
    result.seconds = manifest.totals["seconds"]
    own = [e for e in manifest.shards if e.origin is None]
    result.new_shards, result.reused_shards = len(own), len(manifest.shards) - len(own)
    result.bytes_written = sum(e.bytes + e.index_bytes for e in own) + manifest.sources["bytes"] + \
        (new_dir / MANIFEST_NAME).stat().st_size
    result.bytes_reused = sum(e.bytes + e.index_bytes for e in manifest.shards if e.origin is not None)
    result.elapsed = time.monotonic() - t0
    log.info("update %s → %s: %d new shards, %d reused", old_root, new_dir, result.new_shards, result.reused_shards)
    return result


def _changes(plan: Any, table: Table, items: list[SourceItem], written: Any) -> dict[str, Any]:
    """The sources added, changed, removed and relabelled, for :class:`UpdateResult`; a source that
    failed to decode is among the rejects, neither added nor changed."""
    refused = {j.file for j in written.rejects}
    packed = [it.rel for it in plan.todo if it.rel not in refused]
    return {"added": sorted(r for r in packed if r not in table), "changed": sorted(r for r in packed if r in table),
            "removed": sorted(set(table) - {it.rel for it in items}), "relabelled": sorted(plan.relabelled),
            "unchanged": len(plan.keep) - len(plan.relabelled)}


def _manifest(old_m: Manifest, plan: _Plan, table: Table, old_rows: list[tuple[str, str, int]], written: Any,
              items: list[SourceItem], csv_rejects: list[Reject], opts: PackOptions, vocabulary: list[str],
              note: str, new_dir: Path) -> Manifest:
    """NEW's manifest (written last, after its sources table)."""
    live = {k for it in plan.keep for k in table[it.rel]["keys"]}
    removed: dict[str, list[str]] = {s: list(v) for s, v in old_m.overrides.get("removed", {}).items()}
    used: set[str] = set()
    frames = written.frames
    for key, shard, f in old_rows:
        if key in live:
            used.add(shard)
            frames += f
        else:
            removed.setdefault(shard, []).append(key)
    reused = [ShardEntry(**{**asdict(e), "origin": e.origin or old_m.version_id}) for e in old_m.shards
              if e.name in used]
    vocabularies = {e.origin: (old_m.vocabularies[e.origin] if e.origin in old_m.vocabularies
                               else old_m.vocabulary) for e in reused if e.origin is not None}
    old_relabels = old_m.overrides.get("relabels", {})
    relabels = {}
    for it in plan.keep:
        for k in table[it.rel]["keys"]:
            if it.rel in plan.relabelled:
                primary, secondary, extra = labels_of(it)
                relabels[k] = {"primary_label": primary, "secondary_labels": secondary, "extra": extra}
            elif k in old_relabels:
                relabels[k] = old_relabels[k]
    new_table = {it.rel: {**record(it, plan.prints[it.rel], table[it.rel]["keys"])} for it in plan.keep}
    for it in plan.todo:
        if it.rel in written.keys:
            new_table[it.rel] = record(it, plan.prints[it.rel], written.keys[it.rel])
    overrides = {k: v for k, v in {"removed": {s: sorted(removed[s]) for s in sorted(removed) if s in used},
                                   "relabels": {k: relabels[k] for k in sorted(relabels)}}.items() if v}
    return _save(old_m, reused + written.entries, vocabularies, overrides, new_table, items, csv_rejects, opts,
                 vocabulary, frames, written.rejects, note, new_dir, {it.rel for it in plan.keep})


def _save(old_m: Manifest, shards: list[ShardEntry], vocabularies: dict[str, list[str]], overrides: dict[str, Any],
          table: Table, items: list[SourceItem], csv_rejects: list[Reject], opts: PackOptions, vocabulary: list[str],
          frames: int, rejects: list[Reject], note: str, new_dir: Path, kept: set[str] | None = None) -> Manifest:
    codec = old_m.codec
    samples = sum(len(r["keys"]) for r in table.values())
    seconds = frames * codec.seconds_per_frame
    counts: dict[str, int] = {}
    for r in table.values():
        if r["primary_label"]:
            counts[r["primary_label"]] = counts.get(r["primary_label"], 0) + len(r["keys"])
    totals = {"samples": samples, "frames": frames, "seconds": round(seconds, 6), "hours": round(seconds / 3600, 6),
              "bytes": sum(s.bytes + s.index_bytes for s in shards), "sources": len(items) + len(csv_rejects),
              "sources_packed": len(table)}
    m = Manifest(audio=old_m.audio, layout=old_m.layout, vocabulary=vocabulary, shards=shards, totals=totals,
                 version_id="", label_counts={k: counts[k] for k in sorted(counts)},
                 pack={**options_doc(opts), "source_fingerprint": fingerprint(items, csv_rejects, opts)},
                 rejects=[r.to_dict() for r in [*csv_rejects, *rejects]],
                 budget={"limit_bytes": None, "exhausted": False, "more_bytes_needed": 0},
                 format_version=LINEAGE_VERSION, parent=old_m.version_id, overrides=overrides,
                 vocabularies=vocabularies)
    if old_m.layers:  # label layers: their rows of unchanged audio (format §5.3)
        from shardkit.format import LAYERS_VERSION
        from shardkit.versions.layers import carry_layers

        kept = kept or set()
        m.layers = carry_layers(Path(old_m.where).parent, old_m, new_dir,
                                {k for src in kept for k in table[src]["keys"]}, kept)
        m.format_version = LAYERS_VERSION if m.layers else m.format_version
    m.version_id = m.content_id()
    history = list(old_m.history) or [history_entry(old_m, "")]
    m.history = [*history, history_entry(m, note)][-MAX_HISTORY:]
    m.sources = write_table(new_dir, table)
    m.save(new_dir)
    return m


def history_entry(m: Manifest, note: str) -> dict[str, Any]:
    """A ``history`` item: ``{version_id, parent, samples, seconds, classes, note}``."""
    return {"version_id": m.version_id, "parent": m.parent, "samples": m.samples,
            "seconds": m.totals.get("seconds", 0.0), "classes": len(m.label_counts), "note": note}
