"""Derived sets on Kaggle (docs/kaggle.md, "Derived sets: full snapshot or delta dataset").

A set made by ``shardkit update`` lists shards that live in its ancestors' folders (format §5.1,
``origin``). ``prepare`` lays it out one of two ways:

- **full snapshot** (the default): the ancestors' shards are found where the reader would find them
  (:func:`shardkit.read.lineage.resolve`) and laid out with the set's own, so the dataset reads
  alone. Entries keep their ``origin``; a reader finds those files in the set's own folder first.
- **delta** (``delta=True``): only the set's own new shards and indexes, its manifest and its sources
  table are uploaded. The manifest's ancestor entries name the files as the ancestors' Kaggle datasets
  hold them (``shard-NNNNN.shard``, each index rewritten to name it: its ``index_bytes`` and
  ``index_sha256`` are those of the rewritten index), so a notebook that attaches the delta and its
  parent dataset(s) finds them by name and accepts them by sha256.

Either way ``overrides.removed`` is keyed by the published shard names, and the ``version_id`` stays
the set's (format "Shard file names and publishing layouts"). The default version notes of a derived
set are its ``diff`` against the parent version when that set is found locally.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shardkit import format as fmt
from shardkit.errors import ShardkitError, UsageError
from shardkit.format import Manifest, ShardEntry, ShardIndex

log = logging.getLogger(__name__)

#: the key of ``dataset-metadata.json`` where shardkit keeps what ``publish`` needs (the client ignores it)
META_KEY = "shardkit"


@dataclass
class Lineage:
    """Where a set's ancestors' shards are and how they are published."""

    delta: bool = False
    routes: dict[str, Path] = field(default_factory=dict)  #: ancestor shard or index name → its folder
    parents: list[str] = field(default_factory=list)       #: Kaggle ids of datasets holding ancestors' shards
    ancestors: list[str] = field(default_factory=list)     #: version ids the set's ``origin`` entries name
    notes: str | None = None                               #: default version notes (diff to the parent)

    def uploads(self, entry: ShardEntry) -> bool:
        """Whether ``entry``'s shard and index are files of this upload."""
        return not (self.delta and entry.origin is not None)

    def folder(self, root: Path, name: str) -> Path:
        """The folder holding ``name`` (an ancestor's, or the set's own)."""
        return self.routes.get(name, root)

    def meta(self) -> dict[str, Any]:
        """What goes under :data:`META_KEY` in ``dataset-metadata.json``."""
        doc: dict[str, Any] = {"delta": self.delta, "parents": self.parents, "ancestors": self.ancestors}
        if self.notes:
            doc["notes"] = self.notes
        return doc


def plan_lineage(root: Path, manifest: Manifest, *, delta: bool, search_path: Sequence[str | os.PathLike[str]]
                 | None, parent_ids: Sequence[str], with_notes: bool = True) -> Lineage:
    """The :class:`Lineage` of the set in ``root``: its ancestors' shards found (a :class:`ShardReadError`
    naming the shard and where it looked when one is not), the Kaggle ids of the datasets holding them
    (``parent_ids``, else each ancestor folder's prepared ``SET-kaggle/dataset-metadata.json``) and the
    default notes. ``delta`` on a set without a parent is a :class:`UsageError`."""
    if delta and manifest.parent is None and not manifest.derived:
        raise UsageError(f"{root}: --delta publishes the new shards of a set made by 'shardkit update', and this set "
                         "has no parent version; publish it without --delta")
    if not manifest.derived:
        return Lineage(delta=delta)
    from shardkit.kaggle import rules
    from shardkit.read.lineage import resolve

    routes = resolve(root, manifest, search_path)
    ids = ["/".join(rules.split_id(p)) for p in parent_ids] or _prepared_ids(set(routes.values()))
    ancestors = sorted({e.origin for e in manifest.shards if e.origin is not None})
    notes = diff_notes(root, manifest, search_path) if with_notes else None
    return Lineage(delta, routes, ids, ancestors, notes)


def _prepared_ids(folders: set[Path]) -> list[str]:
    """Dataset ids of the ancestor folders' own Kaggle upload folders (``prepare``'s default ``SET-kaggle``,
    or the folder itself when it is one)."""
    from shardkit.kaggle.layout import METADATA_NAME, default_folder

    out = []
    for folder in sorted(folders):
        for meta in (folder / METADATA_NAME, default_folder(folder) / METADATA_NAME):
            try:
                ref = json.loads(meta.read_text(encoding="utf-8")).get("id")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(ref, str) and ref not in out:
                out.append(ref)
            break
    return out


def published_index(folder: Path, entry: ShardEntry, name: str) -> bytes:
    """The bytes of ``entry``'s index (in ``folder``) rewritten to name the shard file ``name``."""
    index = ShardIndex.load(folder / entry.index)
    return dataclasses.replace(index, shard=name).to_bytes()


def published_entry(entry: ShardEntry, name: str, index: bytes) -> ShardEntry:
    """``entry`` under its published shard ``name``, with its rewritten ``index``'s size and sha256."""
    return dataclasses.replace(entry, name=name, index_bytes=len(index), index_sha256=hashlib.sha256(index).hexdigest())


def renamed_overrides(overrides: dict[str, Any], rename: Callable[[str], str]) -> dict[str, Any]:
    """``overrides`` with its tombstones keyed by the published shard names."""
    if not overrides.get("removed"):
        return overrides
    return {**overrides, "removed": {rename(shard): keys for shard, keys in overrides["removed"].items()}}


def find_version(root: Path, version: str, search_path: Sequence[str | os.PathLike[str]] | None) -> Path | None:
    """The folder of the set whose version id is ``version``, among the roots a reader searches
    (:func:`~shardkit.read.lineage.search_roots`) and one folder below each; None when none is."""
    from shardkit.read.lineage import search_roots

    for r in search_roots(root, search_path):
        try:
            folders = [r, *sorted(p for p in r.iterdir() if p.is_dir())]
        except OSError:
            continue
        for folder in folders:
            if folder != root and _version_of(folder) == version:
                return folder
    return None


def _version_of(folder: Path) -> str | None:
    if not (folder / fmt.MANIFEST_NAME).is_file():
        return None
    try:
        return Manifest.load(folder).version_id
    except ShardkitError:
        return None


def diff_notes(root: Path, manifest: Manifest, search_path: Sequence[str | os.PathLike[str]] | None) -> str:
    """Version notes of a derived set: its ``diff`` against the parent version (found like its shards),
    else the version ids and totals."""
    t = manifest.totals
    totals = (f"{manifest.samples} samples, {float(t.get('hours', 0)):.3f} h, {len(manifest.label_counts)} classes")
    head = f"shardkit {manifest.version_id} (parent {manifest.parent})"
    parent = find_version(root, manifest.parent, search_path) if manifest.parent else None
    if parent is None:
        return f"{head}: {totals}"
    from shardkit.versions.lineage import diff

    try:
        d = diff(parent, root, search_path=search_path)
    except ShardkitError as exc:  # e.g. a parent without a sources table
        log.info("no diff against %s for the version notes: %s", parent, exc)
        return f"{head}: {totals}"
    parts = [f"{n} {getattr(d, k).sources} sources ({getattr(d, k).samples} samples, "
             f"{getattr(d, k).seconds / 3600:.3f} h)" for k, n in
             (("added", "added"), ("removed", "removed"), ("changed", "audio changed"),
              ("relabelled", "relabelled"), ("moved", "moved")) if getattr(d, k).sources]
    classes = "".join(f"; classes {w}: {', '.join(c)}" for w, c in (("new", d.classes_new), ("gone", d.classes_gone))
                      if c)
    classes += "".join(f"; label layers {w}: {', '.join(d.layers[w])}" for w in ("added", "changed", "removed")
                       if d.layers.get(w))
    return f"{head}: {', '.join(parts) or 'no source changed'}, {d.unchanged.sources} unchanged; now {totals}{classes}"
