"""Where a set lives (storage/location.py): Location, the storage table and the resolver table, which higher
layers extend by registration (kaggle:// without the storage or read layer importing shardkit.kaggle)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from read_fixtures import make_set

from shardkit.errors import UsageError
from shardkit.read import ShardSet
from shardkit.storage import location
from shardkit.storage.base import Storage
from shardkit.storage.local import LocalStorage
from shardkit.storage.location import Location, is_url, open_storage, register_scheme, register_storage

ROOT = Path(__file__).resolve().parents[3]


def test_locations_of_folders_urls_and_manifests(tmp_path):
    assert Location.parse("s3://b/p") == Location("s3", "s3://b/p/")
    assert Location.parse(tmp_path) == Location("file", str(tmp_path))
    assert Location.of_set("gs://b/p/v2.json", "manifest.json") == (Location("gs", "gs://b/p/"), "v2.json")
    assert Location.of_set(tmp_path, "manifest.json") == (Location("file", str(tmp_path)), "manifest.json")
    assert Location.of_set(tmp_path / "old.json", "manifest.json") == (Location("file", str(tmp_path)), "old.json")
    local, remote = Location.parse(tmp_path), Location.parse("https://h/x/")
    assert local.is_local and local.path == tmp_path
    assert os.fspath(local) == str(local) == str(tmp_path)
    assert not remote.is_local and str(remote) == "https://h/x/" and remote / "a.tar" == "https://h/x/a.tar"
    with pytest.raises(UsageError, match="object storage"):
        remote.path  # noqa: B018
    assert pickle.loads(pickle.dumps(remote)) == remote
    assert not is_url("ftp://h/x") and not is_url(tmp_path) and is_url("az://c/p")


def test_the_storage_table_opens_each_scheme_and_takes_new_ones(tmp_path, monkeypatch):
    assert isinstance(open_storage(tmp_path), LocalStorage)
    with pytest.raises(UsageError, match="storage_options apply to object-store URLs"):
        open_storage(tmp_path, {"region": "x"})

    class Memory(LocalStorage):
        @classmethod
        def from_location(cls, loc: Location, storage_options: object = None) -> Storage:
            return cls(tmp_path)

    monkeypatch.setitem(location._STORAGES, "mem", None)
    register_storage("mem", Memory)
    assert is_url("mem://set/") and isinstance(open_storage("mem://set/"), Memory)
    monkeypatch.delitem(location._STORAGES, "mem")
    assert not is_url("mem://set/")


def test_a_registered_scheme_resolves_to_a_folder_and_search_path(tmp_path, monkeypatch):
    root, _ = make_set(tmp_path / "set", [[160] * 3])
    monkeypatch.setitem(location._RESOLVERS, "here", None)
    register_scheme("here", lambda loc: (root, [tmp_path / "more"]))
    assert location.resolve_location("here://x", ["a"]) == (root, ["a", tmp_path / "more"])
    assert location.resolve_location(str(root), None) == (str(root), None)
    assert len(ShardSet.open("here://x")) == 3


def test_kaggle_urls_resolve_without_importing_the_kaggle_layer_first(tmp_path):
    make_set(tmp_path / "input" / "datasets" / "owner" / "bird-shards", [[160] * 4])
    code = ("import sys\n"
            "from shardkit.read import ShardSet\n"
            "assert not [m for m in sys.modules if m.startswith('shardkit.kaggle')]\n"
            "ss = ShardSet.open('kaggle://owner/bird-shards')\n"
            "print(len(ss), ss.root)\n")
    env = {**os.environ, "KAGGLE_CACHE_MOUNT_FOLDER": str(tmp_path / "input"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         check=True).stdout.split()
    assert out == ["4", str(tmp_path / "input" / "datasets" / "owner" / "bird-shards")]
