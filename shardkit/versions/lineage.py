"""``log`` (the chain of versions a set records) and ``diff`` (what changed between two sets, by their
sources tables: path, size and sha256 of every source, its labels and sample keys)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shardkit.format import Manifest
from shardkit.format.layers import MAX_LAYER_BYTES, Layer
from shardkit.format.sources import Table, labels_of, load_table
from shardkit.read.shardset import ShardSet


def history(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The versions of the set at ``path``, oldest first: ``{version_id, parent, samples, seconds, hours,
    classes, note}`` (a set without history is its own one-item chain)."""
    m = Manifest.load(path)
    chain = [dict(h) for h in m.history] or [{"version_id": m.version_id, "parent": m.parent, "samples": m.samples,
                                               "seconds": m.totals.get("seconds", 0.0), "note": ""}]
    chain[-1]["classes"] = len(m.label_counts)
    chain[-1]["layers"] = [e.name for e in m.layers]
    for h in chain:
        seconds = h.get("seconds")
        h["hours"] = round(seconds / 3600, 6) if isinstance(seconds, int | float) else 0.0
        h.setdefault("classes", None)
        h.setdefault("samples", None)
        h.setdefault("note", "")
        h.setdefault("layers", [])
    return chain


@dataclass
class Change:
    """Sources, samples and audio seconds of one kind of change."""

    sources: int = 0
    samples: int = 0
    seconds: float = 0.0

    def add(self, samples: int, seconds: float) -> None:
        self.sources += 1
        self.samples += samples
        self.seconds += seconds


@dataclass
class DiffReport:
    """What :func:`diff` found going from A to B. ``per_class``: primary label → kind → :class:`Change`
    (kinds ``added``, ``removed``, ``changed`` (other audio), ``relabelled_in``, ``relabelled_out``)."""

    a: str
    b: str
    added: Change = field(default_factory=Change)
    removed: Change = field(default_factory=Change)
    changed: Change = field(default_factory=Change)
    relabelled: Change = field(default_factory=Change)
    unchanged: Change = field(default_factory=Change)
    moved: Change = field(default_factory=Change)   #: same bytes (sha256) under another path
    per_class: dict[str, dict[str, Change]] = field(default_factory=dict)
    classes_new: list[str] = field(default_factory=list)
    classes_gone: list[str] = field(default_factory=list)
    #: label layers (format §5.3): names ``added``, ``removed``, ``unchanged``, and ``changed``: name →
    #: {"rows_added", "rows_removed", "rows_common", "mean_change": {class: mean |B − A| over common rows}}
    layers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _count(self, label: str | None, kind: str, samples: int, seconds: float) -> None:
        self.per_class.setdefault(str(label), {}).setdefault(kind, Change()).add(samples, seconds)


def _seconds(path: str | os.PathLike[str], table: Table, search_path: Sequence[Any] | None) -> dict[str, float]:
    """Audio seconds of each source of the set (from its indexes)."""
    with ShardSet.open(path, search_path=search_path) as ss:
        rows = {k: i for i, k in enumerate(ss.keys)}
        per = ss.seconds_per_frame
        return {src: sum(float(ss.frames[rows[k]]) * per for k in rec["keys"] if k in rows)
                for src, rec in table.items()}


def diff(a: str | os.PathLike[str], b: str | os.PathLike[str], *,
         search_path: Sequence[str | os.PathLike[str]] | None = None) -> DiffReport:
    """Sources, samples and hours added, removed, changed and relabelled from set ``a`` to set ``b``, in
    total and per primary label, and the classes new in ``b`` or gone from it. Sources match by path;
    a path whose size or sha256 differs is ``changed``; a source only in one set whose bytes the other
    holds under another path is ``moved`` (counted once, from B). Works between any two sets with sources tables
    (versions of one chain or unrelated packs)."""
    ma, mb = Manifest.load(a), Manifest.load(b)
    ta, tb = load_table(a, ma), load_table(b, mb)
    sa, sb = _seconds(a, ta, search_path), _seconds(b, tb, search_path)
    rep = DiffReport(str(Path(a)), str(Path(b)))
    moved = _moved(ta, tb)
    for src in sorted(set(ta) | set(tb)):
        ra, rb = ta.get(src), tb.get(src)
        if src in moved:
            if rb is not None:
                rep.moved.add(len(rb["keys"]), sb[src])
        elif rb is None:
            _note(rep, "removed", ra, len(ra["keys"]), sa[src])
        elif ra is None:
            _note(rep, "added", rb, len(rb["keys"]), sb[src])
        elif (ra["bytes"], ra["sha256"]) != (rb["bytes"], rb["sha256"]):
            _note(rep, "changed", rb, len(rb["keys"]), sb[src])
        elif labels_of(ra) != labels_of(rb):
            rep.relabelled.add(len(rb["keys"]), sb[src])
            rep._count(ra["primary_label"], "relabelled_out", len(ra["keys"]), sa[src])
            rep._count(rb["primary_label"], "relabelled_in", len(rb["keys"]), sb[src])
        else:
            rep.unchanged.add(len(rb["keys"]), sb[src])
    rep.classes_new = sorted(set(mb.label_counts) - set(ma.label_counts))
    rep.classes_gone = sorted(set(ma.label_counts) - set(mb.label_counts))
    rep.layers = layer_changes(Path(a), ma, Path(b), mb)
    return rep


def layer_changes(a: Path, ma: Manifest, b: Path, mb: Manifest) -> dict[str, Any]:
    """The label layers added, removed, unchanged and changed from set ``a`` to set ``b`` (see
    :attr:`DiffReport.layers`); a changed layer's rows are matched by sample key or (source, window)."""
    la, lb = {e.name: e for e in ma.layers}, {e.name: e for e in mb.layers}
    out: dict[str, Any] = {"added": sorted(set(lb) - set(la)), "removed": sorted(set(la) - set(lb)),
                           "unchanged": sorted(n for n in set(la) & set(lb) if la[n].sha256 == lb[n].sha256),
                           "changed": {}}
    for name in sorted(n for n in set(la) & set(lb) if la[n].sha256 != lb[n].sha256):
        out["changed"][name] = _layer_change(_read_layer(a, la[name]), _read_layer(b, lb[name]))
    return out


def _read_layer(root: Path, entry: Any) -> Layer:
    from shardkit.storage.safe_open import read_regular

    return Layer.from_bytes(read_regular(root, entry.file, MAX_LAYER_BYTES), str(root / entry.file))


def _layer_change(la: Layer, lb: Layer) -> dict[str, Any]:
    """Rows added and removed, and per class the mean absolute change over the rows both hold."""
    def ids(layer: Layer) -> dict[Any, int]:
        if layer.kind == "samples":
            return {k: i for i, k in enumerate(layer.keys)}
        src = np.repeat(np.arange(len(layer.sources)), np.diff(layer.source_ptr))
        return {(layer.sources[s], int(w)): i for i, (s, w) in enumerate(zip(src.tolist(), layer.window.tolist()))}

    ia, ib = ids(la), ids(lb)
    common = [k for k in ia if k in ib]
    ra, rb = [ia[k] for k in common], [ib[k] for k in common]
    change = {}
    for c in [c for c in lb.classes if c in la.classes]:
        va = la.values[ra, la.classes.index(c)].astype(np.float64)
        vb = lb.values[rb, lb.classes.index(c)].astype(np.float64)
        change[c] = round(float(np.abs(vb - va).mean()), 6) if common else 0.0
    return {"rows_added": len(set(ib) - set(ia)), "rows_removed": len(set(ia) - set(ib)),
            "rows_common": len(common), "mean_change": change}


def _moved(ta: Table, tb: Table) -> set[str]:
    """Paths of sources only in A or only in B whose bytes (size, sha256) are in the other set under
    another path: the same recording, renamed (both paths are returned)."""
    only_a = {(r["bytes"], r["sha256"]): s for s, r in ta.items() if s not in tb}
    only_b = {(r["bytes"], r["sha256"]): s for s, r in tb.items() if s not in ta}
    return {p for fp in set(only_a) & set(only_b) for p in (only_a[fp], only_b[fp])}


def _note(rep: DiffReport, kind: str, rec: dict[str, Any], samples: int, seconds: float) -> None:
    getattr(rep, kind).add(samples, seconds)
    rep._count(rec["primary_label"], kind, samples, seconds)
