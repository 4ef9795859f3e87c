"""Manifest: typed, checked on read with errors that name the file and the key; round trips exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

import shardkit
from shardkit import ShardSetWriter
from shardkit.errors import ManifestError, OutputConflictError, UnsupportedVersionError
from shardkit.format import Manifest


@pytest.fixture()
def small_set(tmp_path):
    with ShardSetWriter(tmp_path / "set", sample_rate=16000, vocabulary=["a"]) as w:
        w.write(np.zeros(1600, np.int16), key="k0", primary_label="a")
    return tmp_path / "set"


def _doc(path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def test_round_trip_gives_the_same_bytes(small_set):
    data = (small_set / "manifest.json").read_bytes()
    assert Manifest.from_json(data).to_json() == data


@pytest.mark.parametrize("key", ["audio", "layout", "vocabulary", "shards", "totals", "version_id"])
def test_a_missing_required_key_is_named(small_set, key):
    doc = _doc(small_set)
    del doc[key]
    (small_set / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match=rf"manifest.json: manifest lacks '{key}'"):
        Manifest.load(small_set)


@pytest.mark.parametrize("change, match", [
    (lambda d: d["shards"][0].pop("sha256"), "lacks 'sha256'"),
    (lambda d: d["shards"][0].update(bytes="many"), "'bytes'"),
    (lambda d: d.update(vocabulary="a"), "vocabulary"),
    (lambda d: d.update(shards={}), "lists"),
    (lambda d: d.update(audio={"codec": "flac24", "sample_rate": 1}), "flac24"),
])
def test_malformed_values_are_named_errors(small_set, change, match):
    doc = _doc(small_set)
    change(doc)
    (small_set / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match=match):
        Manifest.load(small_set).codec  # noqa: B018 (the codec is checked when used)
        shardkit.ShardSet.open(small_set)


def test_not_json_and_newer_versions(small_set):
    (small_set / "manifest.json").write_bytes(b"{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.load(small_set)
    doc = _doc_from(small_set, format_version=99)
    with pytest.raises(UnsupportedVersionError, match="upgrade shardkit"):
        Manifest.from_json(json.dumps(doc).encode(), "m.json")


def _doc_from(path, **changes) -> dict:
    doc = {"format": "shardkit.manifest", "format_version": 2, "audio": {}, "layout": {}, "vocabulary": [],
           "shards": [], "totals": {}, "version_id": "x"}
    doc.update(changes)
    return doc


def test_a_corrupt_manifest_in_out_is_a_conflict_not_a_traceback(corpus, small_set):
    (small_set / "manifest.json").write_bytes(b"\x00garbage")
    with pytest.raises(OutputConflictError, match=r"manifest.json.*--overwrite"):
        shardkit.pack(corpus[0], small_set, metadata=corpus[1])
