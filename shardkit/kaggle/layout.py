"""``shardkit kaggle prepare``: lay a shard set out as a Kaggle dataset upload folder.

The folder (by default ``SET-kaggle`` beside the set) holds exactly what the ``kaggle`` client
uploads: ``manifest.json``, each shard as ``shard-NNNNN.shard`` (a hard link to the set's
``shard-NNNNN.tar`` where the file system allows, else a copy: a top-level ``.tar`` may be unpacked on
Kaggle's side), each index rewritten to name that file, and ``dataset-metadata.json`` (not uploaded
as a file: the client reads it). The shards' bytes and so the set's ``version_id`` do not change;
the folder is itself a valid shard set (docs/format.md, "Shard file names and publishing layouts").
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shardkit import format as fmt
from shardkit.errors import UsageError
from shardkit.files import atomic_write, make_folder
from shardkit.format import Manifest, ShardEntry
from shardkit.format.manifest import PUBLISHED_SUFFIX  # not an archive extension Kaggle would unpack
from shardkit.kaggle import rules
from shardkit.kaggle.delta import (
    META_KEY,
    Lineage,
    plan_lineage,
    published_entry,
    published_index,
    renamed_overrides,
)
from shardkit.units import format_size

log = logging.getLogger(__name__)

METADATA_NAME = "dataset-metadata.json"


@dataclass
class UploadFile:
    """One top-level file of the upload: its name there, its size and where its bytes come from."""

    name: str
    bytes: int
    source: Path | None  #: the set's file it is linked or copied from; None when written (manifest, index)
    description: str


@dataclass
class UploadPlan:
    """What ``prepare`` laid out (or, with ``dry_run``, would lay out) for Kaggle."""

    folder: Path
    dataset_id: str
    files: list[UploadFile]
    metadata: dict[str, Any]
    version_id: str
    written: bool = False
    linked: int = 0      #: shards hard-linked (no extra disk)
    copied: int = 0      #: shards copied (another file system)
    notes: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        """Bytes the upload sends (every file once)."""
        return sum(f.bytes for f in self.files)


def published_name(name: str) -> str:
    """The name a shard file gets in the upload: ``shard-00000.tar`` → ``shard-00000.shard``; any other
    name that Kaggle could take for an archive gets ``.shard`` appended; other names stay."""
    if name.endswith(fmt.SHARD_SUFFIX):
        return name[: -len(fmt.SHARD_SUFFIX)] + PUBLISHED_SUFFIX
    return name + PUBLISHED_SUFFIX if rules.is_archive_name(name) else name


def default_folder(set_dir: Path) -> Path:
    """``SET-kaggle`` beside the set."""
    return set_dir.parent / f"{set_dir.name}-kaggle"


def prepare(set_dir: str | os.PathLike[str], dataset_id: str, title: str, license: str = "CC0-1.0", *,
            subtitle: str | None = None, description: str | None = None, keywords: Sequence[str] = (),
            out: str | os.PathLike[str] | None = None, dry_run: bool = False, delta: bool = False,
            search_path: Sequence[str | os.PathLike[str]] | None = None, parent_ids: Sequence[str] = ()
            ) -> UploadPlan:
    """Check the set against Kaggle's rules and lay out its upload folder (``out``, default ``SET-kaggle``).

    Refuses, with a :class:`UsageError` naming the rule: a bad id, title, subtitle or license; more than
    50 top-level files (manifest + shards + indexes: at most 24 shards — the message gives the
    ``--shard-size`` to re-pack with); more than 200 GB; an ``out`` that holds files of something else.
    ``dry_run``: check and plan only, write nothing. Returns the :class:`UploadPlan` (files, bytes).

    A set made by ``shardkit update`` (its manifest has a ``parent``) is laid out as a full snapshot:
    its ancestors' shards are found as a reader finds them (``search_path``; a
    :class:`~shardkit.errors.ShardReadError` naming the shard when one is not) and included. ``delta``:
    only its own new shards, indexes, manifest and sources table, the manifest naming the ancestors'
    shards as their Kaggle datasets hold them (:mod:`shardkit.kaggle.delta`); ``parent_ids``: those
    datasets' ids for the description (default: read from the ancestors' own ``SET-kaggle`` folders)."""
    root = fmt.manifest_root(set_dir)
    owner, slug = rules.split_id(dataset_id)
    rules.check_text(title, subtitle)
    license_name = rules.check_license(license)
    manifest = Manifest.load(root)
    folder = Path(out) if out is not None else default_folder(root)
    if folder.resolve() == root.resolve():
        raise UsageError(f"{folder}: the upload folder must not be the shard set itself; pick another --out")
    lineage = plan_lineage(root, manifest, delta=delta, search_path=search_path, parent_ids=parent_ids,
                           with_notes=not dry_run)
    files = _plan_files(root, manifest, lineage)
    _check_limits(root, manifest, files, lineage)
    metadata = _metadata(f"{owner}/{slug}", title, license_name, subtitle, description, keywords, manifest, files,
                         lineage)
    plan = UploadPlan(folder, f"{owner}/{slug}", files, metadata, manifest.version_id)
    _plan_notes(plan, manifest, lineage)
    if dry_run:
        return plan
    _check_folder(folder, files)
    make_folder(folder, "upload folder")
    _write(root, manifest, plan, lineage)
    return plan


def _plan_notes(plan: UploadPlan, manifest: Manifest, lineage: Lineage) -> None:
    if not manifest.complete:
        plan.notes.append("the set is incomplete (its pack stopped at a budget); the dataset says so")
    if lineage.delta and lineage.ancestors:
        held = ", ".join(lineage.parents) or f"the datasets of version(s) {', '.join(lineage.ancestors)}"
        plan.notes.append(f"delta dataset: notebooks must attach {held} too")
    elif lineage.routes:
        n = sum(1 for e in manifest.shards if e.origin is not None)
        plan.notes.append(f"full snapshot: {n} shards of earlier versions included (--delta uploads only the new ones)")


def _plan_files(root: Path, manifest: Manifest, lineage: Lineage) -> list[UploadFile]:
    codec, n = manifest.codec, len(manifest.shards)
    files = [UploadFile(fmt.MANIFEST_NAME, len(manifest.to_json()), None, _manifest_text(manifest))]
    for k, e in enumerate(manifest.shards):
        if not lineage.uploads(e):
            continue
        hours = e.frames * codec.seconds_per_frame / 3600
        files.append(UploadFile(published_name(e.name), e.bytes, lineage.folder(root, e.name) / e.name,
                                f"shard {k + 1} of {n}: POSIX tar of {e.samples} samples ({hours:.2f} h, "
                                f"{manifest.audio.get('codec')}); named .shard so Kaggle keeps it one file"))
        files.append(UploadFile(e.index, e.index_bytes, None,
                                f"index of {published_name(e.name)}: byte offsets of its {e.samples} samples "
                                "(zstd msgpack)"))
    if manifest.sources.get("name"):
        files.append(UploadFile(str(manifest.sources["name"]), int(manifest.sources.get("bytes", 0)),
                                root / str(manifest.sources["name"]),
                                "sources table: size, sha256, labels and sample keys of every source file "
                                "(for shardkit diff / update)"))
    for layer in manifest.layers:  # always this version's own files (format §5.3), small
        what = (f"{layer.window_seconds:g} s windows" if layer.kind == "windows" else "samples")
        files.append(UploadFile(layer.file, layer.bytes, root / layer.file,
                                f"label layer {layer.name}: float16 targets of {len(layer.classes)} classes over "
                                f"{layer.rows} {what} (zstd msgpack; ShardDataset(targets='{layer.name}'))"))
    if manifest.rejects_file and manifest.rejects:  # a version-4 set's rejects (format §5.4)
        ref = manifest.rejects_file
        files.append(UploadFile(str(ref["name"]), int(ref["bytes"]), root / str(ref["name"]),
                                f"the {ref['count']} sources the pack rejected, with the reasons"))
    return files


def _manifest_text(manifest: Manifest) -> str:
    t, audio = manifest.totals, manifest.audio
    return (f"shardkit manifest (format {manifest.format_version}, version {manifest.version_id}): "
            f"{t.get('samples')} samples, {float(t.get('hours', 0)):.2f} h, {len(manifest.vocabulary)} classes, "
            f"{audio.get('codec')} {audio.get('sample_rate')} Hz; read this first")[:500]


def _check_limits(root: Path, manifest: Manifest, files: list[UploadFile], lineage: Lineage) -> None:
    total = sum(f.bytes for f in files) + 100_000  # the manifest: small
    if len(files) > rules.MAX_FILES:
        singles = 1 + bool(manifest.sources.get("name")) + len(manifest.layers)
        most = (rules.MAX_FILES - singles) // 2
        size = -(-int(manifest.totals.get("bytes", total)) // most)
        other = (" (with its earlier versions' shards: publish with --delta to upload only the new ones)"
                 if lineage.routes and not lineage.delta else "")
        raise UsageError(
            f"{root}: {(len(files) - singles) // 2} shards make {len(files)} top-level files (manifest + a shard and "
            f"an index each){other} and Kaggle takes at most {rules.MAX_FILES} per dataset; re-pack with --shard-size "
            f"{_round_up(size)} (at most {most} shards), or publish a subset of the shards")
    if total > rules.MAX_BYTES:
        raise UsageError(f"{root}: {format_size(total)} is more than the {format_size(rules.MAX_BYTES)} Kaggle "
                         "takes per dataset; publish a smaller set (pack with --budget) or split it in two")
    for f in files:
        if rules.is_archive_name(f.name):
            raise UsageError(f"{root}: {f.name} ends like an archive that Kaggle may unpack; rename it")


def _round_up(n: int) -> str:
    """A size string of at least ``n`` bytes in whole MB (or GB above 10 GB)."""
    mb = -(-n // 10**6)
    return f"{-(-mb // 1000)}GB" if mb > 10_000 else f"{mb}MB"


def _metadata(ref: str, title: str, license_name: str, subtitle: str | None, description: str | None,
              keywords: Sequence[str], manifest: Manifest, files: list[UploadFile], lineage: Lineage
              ) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": ref, "title": title.strip(), "licenses": [{"name": license_name}]}
    if subtitle:
        doc["subtitle"] = subtitle.strip()
    doc["description"] = description if description is not None else describe(manifest, ref, lineage)
    doc["keywords"] = [k.strip() for k in keywords if k.strip()]
    doc["resources"] = [{"path": f.name, "description": f.description} for f in files]
    if manifest.parent is not None or lineage.routes:
        doc[META_KEY] = lineage.meta()
    return doc


def describe(manifest: Manifest, ref: str, lineage: Lineage | None = None) -> str:
    """The dataset's default description (Markdown): what the set holds and how to read it."""
    t, a, layout = manifest.totals, manifest.audio, manifest.layout
    top = sorted(manifest.label_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    lines = [
        f"A [shardkit](https://pypi.org/project/shardkit/) shard set, version `{manifest.version_id}` "
        f"(format {manifest.format_version}).",
        "",
        f"- {t.get('samples')} samples, {float(t.get('hours', 0)):.2f} hours of audio, "
        f"{len(manifest.vocabulary)} classes",
        f"- {a.get('codec')}, {a.get('sample_rate')} Hz, {a.get('channels')} channel(s); layout "
        + ", ".join(f"{k}={v}" for k, v in layout.items()),
        f"- {len(manifest.shards)} shards (POSIX tar, named `.shard`), {format_size(int(t.get('bytes', 0)))}",
    ]
    if top:
        lines.append("- most frequent classes: " + ", ".join(f"{k} ({v})" for k, v in top))
    if not manifest.complete:
        lines.append("- incomplete: the pack stopped at its disk budget")
    if manifest.parent is not None:
        lines.append(f"- the next version of `{manifest.parent}` (`shardkit update`)")
    if lineage is not None and lineage.delta and lineage.ancestors:
        held = ", ".join(f"`{p}`" for p in lineage.parents) or "the datasets of versions " + ", ".join(
            f"`{a}`" for a in lineage.ancestors)
        own = sum(1 for e in manifest.shards if e.origin is None)
        lines.append(f"- **a delta dataset**: it holds this version's {own} new shards; the other "
                     f"{len(manifest.shards) - own} are read from {held}: attach it to the notebook too")
    lines += ["", "Read it in a notebook:", "", "```python",
              "import shardkit",
              f"ds = shardkit.ShardDataset('kaggle://{ref}', crop_seconds=5.0, batch_size=64)",
              "```"]
    return "\n".join(lines)


def _check_folder(folder: Path, files: list[UploadFile]) -> None:
    """``folder`` may hold only this plan's files (a re-run) and its own temporaries."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise UsageError(f"{folder}: exists and is not a folder; pick another --out")
    ours = {f.name for f in files} | {METADATA_NAME}
    other = sorted(p.name for p in folder.iterdir() if p.name not in ours and not p.name.endswith(fmt.TMP_SUFFIX))
    if other:
        raise UsageError(f"{folder}: holds {', '.join(other[:5])}{' …' if len(other) > 5 else ''}, which the kaggle "
                         "client would upload too; remove them or pick another --out")


def _write(root: Path, manifest: Manifest, plan: UploadPlan, lineage: Lineage) -> None:
    entries = []
    for e in manifest.shards:
        name, folder = published_name(e.name), lineage.folder(root, e.name)
        data = published_index(folder, e, name)
        if lineage.uploads(e):
            plan.linked, plan.copied = _place(folder / e.name, plan.folder / name, e, plan.linked, plan.copied)
            atomic_write(plan.folder / e.index, data)
        entries.append(published_entry(e, name, data))
    published = dataclasses.replace(manifest, shards=entries,
                                    overrides=renamed_overrides(manifest.overrides, published_name))
    published.totals = {**manifest.totals, "bytes": sum(s.bytes + s.index_bytes for s in entries)}
    atomic_write(plan.folder / fmt.MANIFEST_NAME, published.to_json())
    if manifest.sources.get("name"):
        name = str(manifest.sources["name"])
        atomic_write(plan.folder / name, (root / name).read_bytes())
    for layer in manifest.layers:
        atomic_write(plan.folder / layer.file, (root / layer.file).read_bytes())
    if manifest.rejects_file and manifest.rejects:
        atomic_write(plan.folder / str(manifest.rejects_file["name"]), manifest.rejects_bytes())
    for f in plan.files:
        f.bytes = (plan.folder / f.name).stat().st_size
    atomic_write(plan.folder / METADATA_NAME, (json.dumps(plan.metadata, indent=2, ensure_ascii=False) + "\n").encode())
    plan.written = True
    log.info("laid out %s: %d files, %d bytes (%d shards linked, %d copied)", plan.folder, len(plan.files),
             plan.total_bytes, plan.linked, plan.copied)


def _place(src: Path, dst: Path, entry: ShardEntry, linked: int, copied: int) -> tuple[int, int]:
    """Hard-link ``src`` as ``dst`` (a copy across file systems); keep a ``dst`` that already is it."""
    s = src.stat()
    if dst.exists():
        d = dst.stat()
        if (d.st_dev, d.st_ino) == (s.st_dev, s.st_ino):
            return linked + 1, copied
        if d.st_size == entry.bytes and _sha256(dst) == entry.sha256:
            return linked, copied + 1
        dst.unlink()
    try:
        os.link(src, dst)
        return linked + 1, copied
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
    tmp = dst.with_name(dst.name + fmt.TMP_SUFFIX)
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return linked, copied + 1


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
