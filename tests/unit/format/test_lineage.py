"""Format version 3 (docs/format.md §5.1): lineage keys round-trip, hostile ones are refused by name,
and the version id covers content only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shardkit.errors import ManifestError
from shardkit.format import LINEAGE_VERSION, Manifest

DERIVED = Path(__file__).resolve().parents[2] / "golden" / "v3" / "derived" / "manifest.json"


def doc() -> dict:
    return json.loads(DERIVED.read_text())


def test_a_version_3_manifest_round_trips_byte_for_byte():
    m = Manifest.from_json(DERIVED.read_bytes())
    assert m.format_version == LINEAGE_VERSION and m.derived and m.parent
    assert m.to_json() == DERIVED.read_bytes()
    assert m.content_id() == m.version_id


def test_parent_history_and_notes_do_not_enter_the_version_id():
    m = Manifest.from_json(DERIVED.read_bytes())
    m.parent, m.history = "sk1-0000000000000000", []
    assert m.content_id() == Manifest.from_json(DERIVED.read_bytes()).version_id
    m.overrides = {}
    assert m.content_id() != m.version_id


@pytest.mark.parametrize("edit, needle", [
    (lambda d: d["shards"][0].update(origin=7), "origin"),
    (lambda d: d.update(vocabularies={}), "vocabularies"),
    (lambda d: d["overrides"].update(removed={"shard-99999.tar": ["k"]}), "shard-99999.tar"),
    (lambda d: d["overrides"].update(removed={"shard-00000.tar": "k"}), "overrides.removed"),
    (lambda d: d["overrides"]["relabels"].update(k={"primary_label": 3}), "relabels"),
    (lambda d: d.update(sources={"name": "../etc/passwd", "sha256": "0"}), "sources"),
    (lambda d: d.update(history="x"), "history"),
    (lambda d: d.update(parent=["x"]), "parent"),
])
def test_hostile_lineage_is_refused_naming_the_key(edit, needle):
    d = doc()
    edit(d)
    with pytest.raises(ManifestError, match=needle):
        Manifest.from_json(json.dumps(d).encode(), "set/manifest.json")
