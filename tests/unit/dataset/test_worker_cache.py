"""When the dataset makes the private shard cache its DataLoader workers share (shardkit.storage.cache.worker):
only for a plain ObjectStorage, and a temp folder that cannot be used is a warning, never a failed dataset."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from shardkit.dataset.dataset import _worker_cache
from shardkit.storage.local import LocalStorage

pytest.importorskip("obstore")


def _set(storage, local=False):
    return SimpleNamespace(root=SimpleNamespace(is_local=local), storage=storage)


class Owner:
    pass


def test_a_private_cache_for_object_storage_only(tmp_path, monkeypatch):
    from shardkit.storage.object import ObjectStorage

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    owner = Owner()
    cache = _worker_cache(owner, _set(ObjectStorage("http://127.0.0.1:9/x/")))
    assert cache is not None and cache.private and cache.root.parent == tmp_path
    assert _worker_cache(owner, _set(LocalStorage(tmp_path), local=True)) is None


def test_an_unusable_temp_folder_is_a_warning(tmp_path, monkeypatch, caplog):
    from shardkit.storage.object import ObjectStorage

    not_a_folder = tmp_path / "file"
    not_a_folder.write_bytes(b"")
    monkeypatch.setattr("tempfile.tempdir", str(not_a_folder))
    with caplog.at_level(logging.WARNING):
        assert _worker_cache(Owner(), _set(ObjectStorage("http://127.0.0.1:9/x/"))) is None
    assert "each worker fetches its own windows" in caplog.text and "TMPDIR" in caplog.text
