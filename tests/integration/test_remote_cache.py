"""``cache_dir`` for sets on object storage (storage/cache/) with real DataLoader workers (2, persistent)
reading from moto's S3 server through a proxy that counts the shard bytes it passes on: the second epoch
fetches nothing, the batches are the local read's, the bound holds, no entry is ever torn."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from remote_fixtures import CREDENTIALS, Faults, moto_endpoint, proxy, range_server, upload, url_of

from shardkit.dataset import ShardDataset
from shardkit.errors import UsageError
from shardkit.read import ShardSet
from shardkit.storage.cache import ShardCache

pytestmark = pytest.mark.timeout(240)

_EPOCHS = r"""
import sys, pickle
from torch.utils.data import DataLoader
from shardkit.dataset import ShardDataset
url, local, cache, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def loader(src, workers, **kw):
    ds = ShardDataset(src, batch_size=4, crop_seconds=1.0, seed=5, shuffle_window="400KB", **kw)
    return ds, DataLoader(ds, batch_size=None, num_workers=workers, persistent_workers=workers > 0)
want_ds, want_dl = loader(local, 0)
cached = {"-": {}, "off": {"cache_dir": False}}.get(cache, {"cache_dir": cache, "cache_bytes": limit})
ds, dl = loader(url, 2, **cached)
for epoch in range(2):
    want_ds.set_epoch(epoch)
    ds.set_epoch(epoch)
    want = [(list(b["keys"]), b["audio"].numpy().tobytes()) for b in want_dl]
    got = [(list(b["keys"]), b["audio"].numpy().tobytes(), b["valid"].all().item()) for b in dl]
    assert [g[:2] for g in got] == want and all(g[2] for g in got), f"epoch {epoch} differs from the local read"
    print(f"EPOCH {epoch} EQUAL", flush=True)
    sys.stdin.readline()  # the test reads the proxy's byte count between epochs
"""


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_endpoint() as endpoint:
        yield endpoint


def _run_two_epochs(endpoint, packed, prefix, cache_dir, limit, tmpdir=None):
    """Both epochs in a fresh process (its DataLoader forks workers; this process may have used obstore):
    the shard bytes the proxy passed on before and during each epoch. ``cache_dir`` "-": none given;
    ``tmpdir``: the process's ``$TMPDIR``."""
    upload(endpoint, packed, "shards", prefix)
    faults = Faults(match=r"\.tar")
    counting = proxy(endpoint, faults)
    env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": url_of(counting)}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    proc = subprocess.Popen([sys.executable, "-c", _EPOCHS, f"s3://shards/{prefix}", str(packed), str(cache_dir),
                             str(limit)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    sent = []
    try:
        for epoch in range(2):
            line = proc.stdout.readline()
            assert line.strip() == f"EPOCH {epoch} EQUAL", proc.stderr.read()[-3000:]
            sent.append(faults.sent)
            proc.stdin.write("\n")
            proc.stdin.flush()
        assert proc.wait(60) == 0, proc.stderr.read()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        counting.shutdown()
    return sent


def test_workers_and_the_second_epoch_share_the_downloads(s3_endpoint, packed, tmp_path):
    set_bytes = sum(p.stat().st_size for p in packed.glob("*.tar"))
    first, both = _run_two_epochs(s3_endpoint, packed, "cached/", tmp_path / "cache", 10 * set_bytes)
    assert set_bytes <= first <= set_bytes * 1.05  # each shard once, though two workers read every shard
    assert both == first  # the second epoch fetched no shard byte
    cache = ShardCache(tmp_path / "cache", 10 * set_bytes)
    assert cache.used() == set_bytes and list((tmp_path / "cache" / "tmp").glob("*.part")) == []


def test_a_small_cache_keeps_its_bound_and_the_batches(s3_endpoint, packed, tmp_path):
    sizes = sorted(p.stat().st_size for p in packed.glob("*.tar"))
    limit = sum(sizes[-3:])  # three shards' worth of a set of more
    assert len(sizes) > 4
    first, both = _run_two_epochs(s3_endpoint, packed, "small/", tmp_path / "cache", limit)
    assert both > first  # evicted shards were fetched again, and the epochs still equal the local read's
    assert ShardCache(tmp_path / "cache", limit).used() <= limit


def test_workers_without_cache_dir_fetch_each_shard_once(s3_endpoint, packed, tmp_path):
    """No cache_dir: the two workers share a private shard cache in $TMPDIR, removed when the process exits."""
    set_bytes = sum(p.stat().st_size for p in packed.glob("*.tar"))
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    first, both = _run_two_epochs(s3_endpoint, packed, "private/", "-", 0, tmpdir)
    assert set_bytes <= first <= set_bytes * 1.05  # each shard once, though two workers read every shard
    assert first == set_bytes  # whole shards (on this small set the workers' own windows also fetch ~0.99×)
    assert both == first  # the second epoch read the private cache
    assert not list(tmpdir.glob("shardkit-shards-*"))  # removed at exit


def test_cache_dir_false_reads_windows_in_each_worker(s3_endpoint, packed, tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    first, both = _run_two_epochs(s3_endpoint, packed, "off/", "off", 0, tmpdir)  # batches checked in the child
    assert both > first and not list(tmpdir.glob("shardkit-shards-*"))


_MIXTURE = r"""
import sys
from torch.utils.data import DataLoader
from shardkit import Mixture, ShardDataset
a, b, local = sys.argv[1], sys.argv[2], sys.argv[3]
def mixture(x, y, workers):
    parts = [ShardDataset(s, batch_size=4, crop_seconds=1.0, seed=5, shuffle_window="400KB") for s in (x, y)]
    mix = Mixture(parts, proportions=[0.5, 0.5], seed=7)
    return [(list(t["keys"]), t["audio"].numpy().tobytes()) for t in
            DataLoader(mix, batch_size=None, num_workers=workers)]
assert mixture(a, b, 2) == mixture(local, local, 0), "the mixture differs from the local read"
print("EQUAL", flush=True)
"""


def test_a_mixture_of_sets_on_object_storage_shares_the_downloads(s3_endpoint, packed, tmp_path):
    set_bytes = sum(p.stat().st_size for p in packed.glob("*.tar"))
    for prefix in ("mix-a/", "mix-b/"):
        upload(s3_endpoint, packed, "shards", prefix)
    faults = Faults(match=r"\.tar")
    counting = proxy(s3_endpoint, faults)
    env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": url_of(counting), "TMPDIR": str(tmp_path)}
    try:
        r = subprocess.run([sys.executable, "-c", _MIXTURE, "s3://shards/mix-a/", "s3://shards/mix-b/", str(packed)],
                           capture_output=True, text=True, env=env, timeout=200)
    finally:
        counting.shutdown()
    assert "EQUAL" in r.stdout, r.stderr[-3000:]
    # each shard of both sets whole, once, for both workers (their own windows fetched 0.99× here, in pieces)
    assert faults.sent == 2 * set_bytes


def test_a_stale_private_cache_is_swept(tmp_path, monkeypatch):
    from shardkit.storage.cache import worker as worker_cache

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{worker_cache.PREFIX}{int(dead.stdout)}-abc"
    (stale / "tmp").mkdir(parents=True)
    live = tmp_path / f"{worker_cache.PREFIX}{os.getpid()}-abc"
    live.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))

    class Owner:
        pass

    owner = Owner()
    cache = worker_cache.private_cache(owner)
    assert not stale.exists() and live.exists() and cache.root.parent == tmp_path
    assert cache.root.stat().st_mode & 0o777 == 0o700
    del owner  # collected: its folder goes
    assert not cache.root.exists()


def test_cache_dir_is_for_object_storage(packed, tmp_path):
    with pytest.raises(UsageError, match="cache_dir keeps the shards of a set on object storage"):
        ShardDataset(packed, cache_dir=tmp_path)
    with pytest.raises(UsageError, match="pass cache_dir=FOLDER too"):
        ShardDataset("s3://b/x/", cache_bytes="1GB")
    assert ShardSet.open(packed)  # the folder itself is fine


_REPLACED = r"""
import sys
from pathlib import Path
from torch.utils.data import DataLoader
from shardkit.dataset import ShardDataset
from shardkit.errors import ShardReadError
url, served = sys.argv[1], Path(sys.argv[2])
ds = ShardDataset(url, batch_size=1, crop_seconds=1.0, shuffle=False, read_ahead=False)
victim = served / ds.shard_set.shard_names[-1]
it = iter(DataLoader(ds, batch_size=None, num_workers=2))
next(it)
data = bytearray(victim.read_bytes())
data[0] ^= 1  # one byte of a tar header: every member's CRC-32 still right, only the ETag tells
(served / "new").write_bytes(bytes(data))
(served / "new").replace(victim)
try:
    for _ in it:
        pass
except ShardReadError as exc:
    print("RAISED", exc, flush=True)
"""


def test_workers_sharing_the_private_cache_name_a_shard_replaced_mid_epoch(packed, tmp_path):
    """Two DataLoader workers over HTTP without cache_dir: the shard replaced after the first batch is named
    (its download's If-Match fails), and the private cache goes with the process even though a worker was
    still fetching when it exited."""
    copy = tmp_path / "served"
    shutil.copytree(packed, copy)
    server = range_server(copy)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    try:
        r = subprocess.run([sys.executable, "-c", _REPLACED, url_of(server) + "/", str(copy)], capture_output=True,
                           text=True, env={**os.environ, "TMPDIR": str(tmpdir)}, timeout=120)
    finally:
        server.shutdown()
    victim = ShardSet.open(copy).shard_names[-1]
    assert "RAISED" in r.stdout and victim in r.stdout, r.stderr[-3000:]
    assert "the shard changed since the set was opened" in r.stdout
    assert not list(tmpdir.glob("shardkit-shards-*"))
