"""Fuzzing manifest.json: arbitrary bytes, arbitrary JSON, and a real manifest with one node replaced
or removed, through Manifest.from_json and through ShardSet.open of a set holding it."""

from __future__ import annotations

import json
import shutil

import pytest
from fuzz_helpers import drop_at, examples, guarded, json_values, replace_at
from hypothesis import given
from hypothesis import strategies as st
from read_fixtures import make_set

from shardkit.format import Manifest
from shardkit.read import ShardSet


@pytest.fixture(scope="module")
def real_set(tmp_path_factory):
    return make_set(tmp_path_factory.mktemp("fuzzset") / "set", [[160, 120], [160]])[0]


@examples(60)
@given(st.binary(max_size=400))
def test_bytes(data):
    guarded(Manifest.from_json, data)


@examples(60)
@given(json_values())
def test_json_documents(doc):
    guarded(Manifest.from_json, json.dumps(doc).encode())
    guarded(Manifest.from_json, json.dumps({"format": "shardkit.manifest", "format_version": 2, **(
        doc if isinstance(doc, dict) else {"shards": doc})}).encode())


@examples(150)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=4), json_values(8), st.booleans())
def test_real_manifest_mutated(real_set, tmp_path_factory, path, value, drop):
    doc = json.loads((real_set / "manifest.json").read_bytes())
    doc = drop_at(doc, path) if drop else replace_at(doc, path, value)
    data = json.dumps(doc).encode()
    guarded(Manifest.from_json, data)
    root = tmp_path_factory.mktemp("m") / "set"
    shutil.copytree(real_set, root)
    (root / "manifest.json").write_bytes(data)
    ss = guarded(ShardSet.open, root)
    if isinstance(ss, ShardSet):
        ss.close()
