"""Apply a derived set's lineage to its shards' indexes (format §5.1): label numbers of an ancestor's
shard are renumbered into the set's vocabulary, tombstoned samples dropped, relabels applied.

Every reader goes through :func:`apply_overrides` (``ShardSet.open``, so ``ShardDataset``, ``ls``,
``cat``, ``verify``), on the indexes in memory; no file changes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from shardkit.format import Manifest, ShardIndex

#: a label an override or ancestor names that the set's vocabulary lacks (the reader's label check
#: then refuses the sample, naming it)
UNKNOWN = -2


def effective_labels(new: dict[str, Any], number: dict[str, int]) -> tuple[int, list[int]]:
    """(primary, secondaries) label numbers of a relabel override in the vocabulary ``number``."""
    primary = new.get("primary_label")
    return (number.get(primary, UNKNOWN) if primary else -1,
            [number.get(s, UNKNOWN) for s in new.get("secondary_labels", [])])


def apply_overrides(manifest: Manifest, indexes: list[ShardIndex]) -> list[ShardIndex]:
    """The indexes as the set's readers see them (one per shard entry, in order): columns in the set's
    vocabulary, without tombstoned samples, with relabels applied."""
    number = {v: i for i, v in enumerate(manifest.vocabulary)}
    removed: dict[str, list[str]] = manifest.overrides.get("removed", {})
    relabels: dict[str, dict[str, Any]] = manifest.overrides.get("relabels", {})
    out = []
    for entry, ix in zip(manifest.shards, indexes, strict=True):
        keys = ix.columns["key"]
        dead = set(removed.get(entry.name, ()))
        remap = None if ix.vocabulary == manifest.vocabulary else [number.get(v, UNKNOWN) for v in ix.vocabulary]
        if not dead and remap is None and not any(k in relabels for k in keys):
            out.append(ix)
            continue
        keep = [i for i, k in enumerate(keys) if k not in dead]
        cols = {name: [col[i] for i in keep] for name, col in ix.columns.items()}
        if remap is not None:
            cols["label"] = [remap[v] if 0 <= v < len(remap) else (v if v < 0 else UNKNOWN) for v in cols["label"]]
            cols["secondary"] = [[remap[v] if 0 <= v < len(remap) else UNKNOWN for v in sec]
                                 for sec in cols["secondary"]]
        for j, k in enumerate(cols["key"]):
            if k in relabels:
                cols["label"][j], cols["secondary"][j] = effective_labels(relabels[k], number)
        out.append(dataclasses.replace(ix, columns=cols, vocabulary=list(manifest.vocabulary)))
    return out
