"""Fixtures of the versions tests: a private user cache per test, and a chain of two versions."""

from __future__ import annotations

import pytest
from versions_factory import corpus, options, season

import shardkit


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARDKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture()
def chain(tmp_path):
    """(root, csv, v1, v2, kinds, result): a first pack, the season's change, and its update."""
    csv_path = corpus(tmp_path)
    v1 = tmp_path / "v1"
    shardkit.pack(tmp_path / "audio", v1, metadata=csv_path, options=options())
    kinds = season(tmp_path, csv_path)
    v2 = tmp_path / "v2"
    result = shardkit.update(tmp_path / "audio", v1, v2, metadata=csv_path, note="season 2")
    return tmp_path, csv_path, v1, v2, kinds, result
