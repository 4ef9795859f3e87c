"""Shard sets on object storage, read through real servers on loopback (docs/reading.md, "Shard sets on
object storage"): an S3 server (moto), a fault-injecting proxy in front of it, a plain HTTP server.

Every case: the epoch equals the local read of the same set (same seed), or a named error.
"""

from __future__ import annotations

import os
import pickle
import socket
import time

import pytest
from remote_fixtures import CREDENTIALS, Faults, moto_endpoint, proxy, range_server, upload, url_of

from shardkit.dataset import ShardDataset
from shardkit.errors import ManifestError, ShardReadError, StorageError, UsageError
from shardkit.read import ShardSet
from shardkit.storage.base import Extent
from shardkit.storage.local import LocalStorage
from shardkit.storage.location import open_storage
from shardkit.storage.object import ObjectStorage

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="session")
def s3_endpoint():
    with moto_endpoint() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def s3_set(s3_endpoint, packed):
    """The session's packed set uploaded to s3://shards/a/."""
    upload(s3_endpoint, packed, "shards", "a/")
    return "s3://shards/a/"


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch):
    for k, v in CREDENTIALS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return s3_endpoint


def _epoch(source, **kw):
    ds = ShardDataset(source, batch_size=4, crop_seconds=1.0, seed=5, shuffle_window="400KB", **kw)
    return [(list(b["keys"]), b["audio"].numpy().tobytes(), b["valid"].tolist()) for b in ds], ds


def test_remote_set_reads_exactly_the_local_samples(s3_env, s3_set, packed):
    remote, local = ShardSet.open(s3_set), ShardSet.open(packed)
    assert isinstance(remote.storage, ObjectStorage) and not remote.root.is_local and str(remote.root) == s3_set
    assert remote.keys == local.keys and len(remote) == len(local)
    for i in range(len(local)):
        assert (remote.read_frames(i, 100, 5000) == local.read_frames(i, 100, 5000)).all()
        assert remote.read_meta(i) == local.read_meta(i)
        assert remote.read_data_member(i) == local.read_data_member(i)


def test_remote_epoch_equals_the_local_epoch(s3_env, s3_set, packed):
    remote, _ = _epoch(s3_set)
    local, _ = _epoch(packed)
    assert remote == local and len(local) > 1


def test_http_range_server(packed):
    server = range_server(packed)
    try:
        remote, _ = _epoch(url_of(server) + "/")
        local, _ = _epoch(packed)
        assert remote == local
    finally:
        server.shutdown()


def test_prefetch_fills_the_cache_with_checked_windows_and_read_into_serves_them(s3_env, s3_set, packed):
    ss = ShardSet.open(s3_set)
    st = ss.storage
    name = ss.shard_names[0]
    starts, ends, crcs = ss.members(name)
    st.prefetch(name, [Extent(int(s), int(e - s), int(c)) for s, e, c in zip(starts, ends, crcs)])
    deadline = time.monotonic() + 30
    while st._inflight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert st._cache.used > 0
    buf = bytearray(1000)
    assert st.read_into(name, [(int(starts[0]), 1000, memoryview(buf))]) == []
    assert bytes(buf) == (packed / name).read_bytes()[int(starts[0]):int(starts[0]) + 1000]


def test_object_storage_pickles_to_its_url_and_options(s3_env, s3_set):
    st = ObjectStorage(s3_set, {"region": "us-east-1"}, cache_bytes="64MB")
    st.size("manifest.json")
    state = st.__getstate__()
    tag = state.pop("tags")["manifest.json"]  # the ETag recorded by the HEAD: workers check against it
    assert tag and state == {"url": s3_set, "storage_options": {"region": "us-east-1"}, "cache_bytes": 64_000_000,
                             "max_in_flight": 16}
    copy = pickle.loads(pickle.dumps(st))
    assert copy.size("manifest.json") == st.size("manifest.json")
    assert isinstance(open_storage(s3_set), ObjectStorage)
    assert isinstance(open_storage("some/folder"), LocalStorage)
    with pytest.raises(UsageError, match="storage_options"):
        open_storage("some/folder", {"region": "x"})


# -- integrity -------------------------------------------------------------------------------------------


def _corrupt_copy(endpoint, packed, tmp_path, prefix):
    """The set with one byte flipped inside the first sample's audio of shard 0 (size unchanged)."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(packed, copy)
    ss = ShardSet.open(copy)
    shard = copy / ss.shard_names[0]
    data = bytearray(shard.read_bytes())
    data[int(ss.payload_offset[0]) + 10] ^= 0xFF
    shard.write_bytes(bytes(data))
    upload(endpoint, copy, "shards", prefix)
    return "s3://shards/" + prefix, ss.keys[0]


def test_a_member_that_fails_its_crc_is_a_named_error_or_a_skip(s3_env, packed, tmp_path):
    url, bad_key = _corrupt_copy(s3_env, packed, tmp_path, "corrupt/")
    with pytest.raises(ShardReadError, match="CRC-32"):
        _epoch(url)
    batches, ds = _epoch(url, on_error="skip")
    assert ds.stats["skipped"] >= 1
    local, _ = _epoch(packed)
    for (keys, audio, valid), (lkeys, laudio, lvalid) in zip(batches, local):
        assert keys == lkeys
        if bad_key not in keys:
            assert audio == laudio and valid == lvalid
        else:
            assert valid[keys.index(bad_key)] is False


# -- errors ----------------------------------------------------------------------------------------------


def test_a_missing_bucket_names_the_url(s3_env, s3_set):
    with pytest.raises(StorageError, match=r"s3://no-such-bucket/x/manifest.json: the bucket does not exist"):
        ShardSet.open("s3://no-such-bucket/x/")


def test_a_url_that_is_not_a_shard_set(s3_env, s3_set):
    with pytest.raises(ManifestError, match=r"s3://shards/nothing/manifest.json: no manifest"):
        ShardSet.open("s3://shards/nothing/")


def test_an_unreachable_endpoint_fails_fast_with_one_line(monkeypatch, s3_set):
    for k, v in CREDENTIALS.items():
        monkeypatch.setenv(k, v)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    t0 = time.monotonic()
    with pytest.raises(StorageError, match="cannot reach the storage endpoint") as info:
        ShardSet.open(s3_set, storage_options={"retry_config": {"max_retries": 1}})
    assert "\n" not in str(info.value) and s3_set in str(info.value)
    assert time.monotonic() - t0 < 60


def test_refused_credentials(s3_env, s3_set, monkeypatch):
    server = proxy(s3_env, Faults(match=".", status=1.0, code=403))
    monkeypatch.setenv("AWS_ENDPOINT_URL", url_of(server))
    try:
        with pytest.raises(StorageError, match="access denied; check the credentials"):
            ShardSet.open(s3_set)
    finally:
        server.shutdown()


# -- a faulty network --------------------------------------------------------------------------------------


@pytest.mark.parametrize("faults", [
    Faults(status=0.3, seed=1),                    # HTTP 500s: obstore retries
    Faults(cut=0.3, seed=2),                       # bodies cut mid-transfer
    Faults(delay=0.05, seed=3),                    # 50 ms before every first byte
], ids=["http-500", "cut-bodies", "first-byte-50ms"])
def test_faults_give_the_local_epoch_or_a_named_error(s3_env, s3_set, packed, monkeypatch, faults):
    server = proxy(s3_env, faults)
    monkeypatch.setenv("AWS_ENDPOINT_URL", url_of(server))
    try:
        local, _ = _epoch(packed)
        try:
            remote, _ = _epoch(s3_set)
        except (ShardReadError, StorageError) as exc:  # named, one line
            assert "\n" not in str(exc)
        else:
            assert remote == local
    finally:
        server.shutdown()


# -- the CLI -------------------------------------------------------------------------------------------


def _cli(*args, env):
    """``python -m shardkit_cli ARGS`` of this checkout (its cli/ folder is the shardkit_cli package)."""
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import shardkit

    top = Path(shardkit.__file__).resolve().parent.parent
    link = Path(tempfile.gettempdir()) / f"shardkit-cli-{os.getpid()}"
    link.mkdir(exist_ok=True)
    if not (link / "shardkit_cli").exists():
        (link / "shardkit_cli").symlink_to(top / "cli")
    path = os.pathsep.join([str(link), str(top)])
    return subprocess.run([sys.executable, "-m", "shardkit_cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env, "PYTHONPATH": path}, timeout=120)


def test_cli_info_ls_cat_verify_on_an_s3_url(s3_env, s3_set, packed, tmp_path):
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": s3_env}
    r = _cli("info", s3_set, env=env)
    assert r.returncode == 0, r.stderr
    assert s3_set in r.stdout and "samples" in r.stdout
    r = _cli("ls", s3_set, env=env)
    local = ShardSet.open(packed)
    assert r.returncode == 0 and [ln.split("\t")[0] for ln in r.stdout.splitlines()] == local.keys
    r = _cli("cat", s3_set, local.keys[2], "-o", str(tmp_path / "x.wav"), env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "x.wav").read_bytes() == local.read_data_member(2)
    r = _cli("verify", s3_set, env=env)
    assert r.returncode == 0 and r.stdout.startswith("OK:"), r.stdout + r.stderr


def test_cli_verify_names_the_damaged_sample_and_errors_are_one_line(s3_env, packed, tmp_path):
    url, bad_key = _corrupt_copy(s3_env, packed, tmp_path, "corrupt-cli/")
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": s3_env}
    r = _cli("verify", url, env=env)
    assert r.returncode == 4 and bad_key in r.stdout and "CRC-32" in r.stdout
    r = _cli("info", "s3://no-such-bucket/x/", env=env)
    assert r.returncode == 1 and "the bucket does not exist" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# -- fork safety: real DataLoader workers, in a fresh process (pytest's own may have used obstore) --------

_LOADER = r"""
import sys, pickle
from torch.utils.data import DataLoader
from shardkit.dataset import ShardDataset
from shardkit.errors import UsageError
url, local, mode = sys.argv[1], sys.argv[2], sys.argv[3]
def epochs(src, workers, **kw):
    ds = ShardDataset(src, batch_size=4, crop_seconds=1.0, seed=5, shuffle_window="400KB")
    dl = DataLoader(ds, batch_size=None, num_workers=workers, persistent_workers=workers > 0, **kw)
    out = []
    for e in range(2):
        ds.set_epoch(e)
        out.append([(list(b["keys"]), b["audio"].numpy().tobytes()) for b in dl])
    return out
want = epochs(local, 0)
if mode == "forked-after-use":
    ds = ShardDataset(url, batch_size=4, crop_seconds=1.0, seed=5)
    next(iter(ds))  # the main process reads from the bucket itself, then forks workers
    try:
        list(DataLoader(ds, batch_size=None, num_workers=2))
    except Exception as exc:
        print("REFUSED", type(exc).__name__, str(exc).splitlines()[-1])
        sys.exit(0)
    sys.exit("not refused")
ctx = {} if mode == "fork" else {"multiprocessing_context": mode}
assert epochs(url, 2, **ctx) == want
print("EQUAL")
"""


@pytest.mark.parametrize("mode", ["fork", "spawn", "forked-after-use"])
def test_dataloader_with_two_persistent_workers_never_hangs(s3_env, s3_set, packed, mode):
    import os
    import subprocess
    import sys

    env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": s3_env}
    r = subprocess.run([sys.executable, "-c", _LOADER, s3_set, str(packed), mode], capture_output=True, text=True,
                       env=env, timeout=150)  # a hang fails here instead of blocking the suite
    assert r.returncode == 0, r.stderr[-2000:]
    if mode == "forked-after-use":
        assert "REFUSED" in r.stdout and "multiprocessing_context='spawn'" in r.stdout
    else:
        assert "EQUAL" in r.stdout


# -- DDP: 2 gloo ranks reading from the S3 server ---------------------------------------------------------


def _ddp_rank(rank, world, port, url, out):
    import json
    from datetime import timedelta

    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        ds = ShardDataset(url, batch_size=2, crop_seconds=1.0, seed=5, shuffle_window="400KB")
        keys = []
        for b in DataLoader(ds, batch_size=None, num_workers=1):
            n = torch.tensor([int(b["valid"].sum())])
            dist.all_reduce(n)  # hangs unless every rank takes the same number of steps
            keys += [k for k, v in zip(b["keys"], b["valid"].tolist()) if v]
        with open(f"{out}/rank{rank}.json", "w") as fh:
            json.dump(keys, fh)
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_read_the_s3_set_exactly_once(s3_env, s3_set, packed, tmp_path):
    import json

    import torch.multiprocessing as tmp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp.spawn(_ddp_rank, args=(2, port, s3_set, str(tmp_path)), nprocs=2, join=True)
    keys = [k for r in range(2) for k in json.loads((tmp_path / f"rank{r}.json").read_text())]
    assert sorted(keys) == sorted(ShardSet.open(packed).keys)
