"""Fixtures of the versions tests: a private user cache per test, and a chain of two versions."""

from __future__ import annotations

import pytest
from versions_factory import update_chain


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARDKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture()
def chain(tmp_path):
    """(root, csv, v1, v2, kinds, result): a first pack, the season's change, and its update."""
    csv_path, kinds, result = update_chain(tmp_path)
    return tmp_path, csv_path, tmp_path / "v1", tmp_path / "v2", kinds, result
