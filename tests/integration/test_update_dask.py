"""``update(..., engine="dask")`` / ``shardkit update --engine dask``: the new sources of an update decoded
as tasks on a real Dask cluster on loopback give NEW the same bytes, file by file (sha256), as a local
update of the same change."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from versions_factory import first_pack_and_season

import shardkit

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.timeout(300)


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARDKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture()
def changed(tmp_path):
    """(audio, csv, v1, local v2's hashes): a first pack, the season's change, and its local update."""
    csv_path, _ = first_pack_and_season(tmp_path)
    v1 = tmp_path / "v1"
    local = shardkit.update(tmp_path / "audio", v1, tmp_path / "v2-local", metadata=csv_path, workers=2)
    assert local.new_shards >= 1 and local.reused_shards >= 1
    return tmp_path / "audio", csv_path, v1, _hashes(tmp_path / "v2-local")


def test_an_update_on_a_local_cluster_of_two_workers_gives_the_local_bytes(changed, tmp_path):
    audio, csv_path, v1, reference = changed
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        r = shardkit.update(audio, v1, tmp_path / "v2-dask", metadata=csv_path, engine="dask", client=client)
        assert client.status == "running"  # a client given is left open
    assert r.new_shards >= 1
    assert _hashes(tmp_path / "v2-dask") == reference


def test_the_cli_update_takes_the_engine_options(changed, tmp_path):
    audio, csv_path, v1, reference = changed
    top = Path(shardkit.__file__).resolve().parents[1]
    path = [str(top / ".pyshim"), str(top), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    base = [sys.executable, "-m", "shardkit_cli", "update", str(audio), str(v1), "--metadata", str(csv_path)]
    r = subprocess.run([*base, str(tmp_path / "v2-cli"), "--engine", "dask", "--workers", "2"],
                       capture_output=True, text=True, env=env, timeout=240)
    assert r.returncode == 0, r.stderr
    assert _hashes(tmp_path / "v2-cli") == reference
    r = subprocess.run([*base, str(tmp_path / "v2-x"), "--dashboard"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 2 and "--engine dask" in r.stderr
    assert not (tmp_path / "v2-x").exists()  # refused before anything is written
