"""The DataLoader workers' private shard cache fills a shard in blocks and serves members as they arrive
(shardkit/storage/cache/blocks.py): each block fetched once by the processes sharing the cache, every member
CRC-checked before it is served, a fetcher killed mid-block costs nothing but its block, a shard replaced on the
server is named, a whole-shard sha256 mismatch is caught. Real processes and a real HTTP server on 127.0.0.1
(through the byte-counting proxy); blocks of 16 KB so that each small shard of the test set has several."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from remote_fixtures import Faults, proxy, range_server, url_of

from shardkit.read import ShardSet
from shardkit.storage.cache import CachedStorage, CorruptShard, ShardCache
from shardkit.storage.cache import blocks as cache_blocks

pytest.importorskip("obstore")
pytestmark = pytest.mark.timeout(180)

BLOCK = 16 << 10

#: a process reading every member of every shard of the set at argv[1] through the private cache at argv[2]
#: (blocks of BLOCK bytes); argv[3] "die": its first block write puts half a block of zeros in and kills it
_READER = r"""
import os, signal, sys
sys.path[:0] = {paths!r}
from test_remote_blocks import read_all, storage
from shardkit.storage.cache import blocks as cache_blocks
cache_blocks.BLOCK = {block}
if sys.argv[3] == "die":
    def dying(fd, offset, disk):
        def write(piece):
            os.pwrite(fd, bytes(len(piece) // 2), offset)
            os.kill(os.getpid(), signal.SIGKILL)
        return write
    cache_blocks._writer = dying
ss = storage(sys.argv[1], sys.argv[2])
got = read_all(ss)
print("READ", sum(len(v) for v in got.values()), flush=True)
"""


def storage(url: str, cache_root: str | os.PathLike[str]) -> ShardSet:
    """The set at ``url`` read through a private :class:`ShardCache` at ``cache_root`` (as a DataLoader worker
    reads it: :meth:`ShardDataset._share_downloads`)."""
    ss = ShardSet.open(url)
    shards = {e.name: (e.bytes, e.sha256) for e in ss.manifest.shards}
    ss.use_storage(CachedStorage(ss.storage, ShardCache(cache_root, 1 << 40, private=True), shards))
    return ss


def read_all(ss: ShardSet, shards: list[str] | None = None) -> dict[tuple[str, int], bytes]:
    """Every member of ``shards`` (default all), in a shuffled order, one read call per shard:
    ``{(shard, offset): bytes}``; a failed range raises."""
    out = {}
    rng = np.random.default_rng(0)
    for name in shards or ss.shard_names:
        starts, ends, _ = ss.members(name)
        order = rng.permutation(len(starts))
        ranges = [(int(starts[m]), int(ends[m] - starts[m]), memoryview(bytearray(int(ends[m] - starts[m]))))
                  for m in order]
        errors = ss.storage.read_into(name, ranges)
        if errors:
            raise errors[0][1]
        out.update({(name, a): bytes(d) for a, _, d in ranges})
    return out


def _want(root: Path, ss: ShardSet) -> dict[tuple[str, int], bytes]:
    out = {}
    for name in ss.shard_names:
        data = (root / name).read_bytes()
        starts, ends, crcs = ss.members(name)
        for a, b, c in zip(starts.tolist(), ends.tolist(), crcs.tolist()):
            assert zlib.crc32(data[a:b]) == c
            out[name, a] = data[a:b]
    return out


def _settled(cache: Path, ss: ShardSet, timeout: float = 30.0) -> list[Path]:
    """The cache's entries once every shard became one (the last block's sha256 runs in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = sorted(cache.glob("*.tar"))
        if len(entries) == len(ss.shard_names) and not list((cache / "tmp").glob("*.fill/data")):
            return entries
        time.sleep(0.05)
    raise AssertionError(f"not every shard became an entry: {sorted(os.listdir(cache))}")


@pytest.fixture
def served(packed, tmp_path):
    """(a copy of the set served over HTTP, its URL through a proxy counting the .tar bytes sent, the counts)."""
    copy = tmp_path / "served"
    shutil.copytree(packed, copy)
    server = range_server(copy)
    faults = Faults(match=r"\.tar")
    counting = proxy(url_of(server), faults)
    yield copy, url_of(counting) + "/", faults
    counting.shutdown()
    server.shutdown()


def _readers(url: str, cache: Path, how: list[str]) -> list[subprocess.CompletedProcess[str]]:
    here = Path(__file__).resolve().parent
    script = _READER.format(paths=[str(here), str(here.parent), str(here.parents[1])], block=BLOCK)
    procs = [subprocess.Popen([sys.executable, "-c", script, url, str(cache), h], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for h in how]
    return [subprocess.CompletedProcess(p.args, p.wait(120), *p.communicate()) for p in procs]


def test_two_processes_fetch_each_block_once_and_read_the_members(served, tmp_path):
    copy, url, faults = served
    set_bytes = sum(p.stat().st_size for p in copy.glob("*.tar"))
    assert min(p.stat().st_size for p in copy.glob("*.tar")) > 4 * BLOCK  # several blocks per shard
    done = _readers(url, tmp_path / "cache", ["read", "read"])
    assert all(r.returncode == 0 and r.stdout.startswith("READ") for r in done), done[0].stderr[-3000:]
    assert faults.sent == set_bytes  # every block once, for both
    ss = ShardSet.open(copy)
    entries = _settled(tmp_path / "cache", ss)
    assert {p.stem for p in entries} == {e.sha256 for e in ss.manifest.shards}


def test_a_fetcher_killed_mid_block_leaves_the_others_reading_and_nothing_torn(served, tmp_path, monkeypatch):
    copy, url, _ = served
    cache = tmp_path / "cache"
    killed = _readers(url, cache, ["die"])[0]
    assert killed.returncode == -9  # killed in its first block write, holding that block's lock
    assert list((cache / "tmp").glob("*.fill/data"))  # half a block of zeros in, not marked
    monkeypatch.setattr(cache_blocks, "BLOCK", BLOCK)
    ss = storage(url, cache)
    assert read_all(ss) == _want(copy, ShardSet.open(copy))
    _settled(cache, ss)  # each shard's sha256 matched: the zeros were fetched over
    ss.close()


def _member(ss: ShardSet, name: str, m: int) -> list[tuple[int, int, memoryview]]:
    starts, ends, _ = ss.members(name)
    return [(int(starts[m]), int(ends[m] - starts[m]), memoryview(bytearray(int(ends[m] - starts[m]))))]


def test_a_shard_replaced_on_the_server_mid_read_is_named(served, tmp_path, monkeypatch):
    copy, url, _ = served
    monkeypatch.setattr(cache_blocks, "BLOCK", BLOCK)
    ss = storage(url, tmp_path / "cache")
    name = ss.shard_names[-1]
    last, first = _member(ss, name, -1), _member(ss, name, 0)  # the .mp at the end; the audio from the start
    assert last[0][0] > first[0][0] + first[0][1] - BLOCK and first[0][1] > 2 * BLOCK
    assert ss.storage.read_into(name, last) == []  # its last block is in
    data = bytearray((copy / name).read_bytes())
    data[0] ^= 1  # one byte of a tar header: every member's CRC-32 still right, only the ETag tells
    (copy / "new").write_bytes(bytes(data))
    (copy / "new").replace(copy / name)
    (_, err), = ss.storage.read_into(name, first)  # needs the blocks before it: fetched now, refused
    assert "the shard changed since the set was opened" in str(err) and name in str(err)
    assert ss.storage.read_into(name, last) == []  # what was fetched before the change still serves
    assert bytes(last[0][2]) == (copy / name).read_bytes()[last[0][0]:last[0][0] + last[0][1]]
    assert not list((tmp_path / "cache").glob("*.tar"))  # never an entry
    ss.close()


def test_a_shard_whose_sha256_fails_is_dropped_and_its_reads_fail(served, tmp_path, monkeypatch):
    _, url, _ = served
    monkeypatch.setattr(cache_blocks, "BLOCK", BLOCK)
    ss = ShardSet.open(url)
    shards = {e.name: (e.bytes, e.sha256) for e in ss.manifest.shards}
    name = ss.shard_names[0]
    shards[name] = (shards[name][0], "0" * 64)  # a manifest that names other bytes
    ss.use_storage(CachedStorage(ss.storage, ShardCache(tmp_path / "cache", 1 << 40, private=True), shards))
    with contextlib.suppress(CorruptShard):  # every member passes its CRC-32; the read that brought the last
        read_all(ss, [name])  # block in fails too when the shard's sha256 was checked before it served
    deadline = time.monotonic() + 30
    while list((tmp_path / "cache" / "tmp").glob("*.fill")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list((tmp_path / "cache").rglob("*.tar")) and not list((tmp_path / "cache" / "tmp").glob("*.fill"))
    with pytest.raises(CorruptShard, match=rf"{name}: downloaded .* the manifest says"):
        read_all(ss, [name])
    ss.close()


def test_a_read_takes_over_read_ahead_not_started_yet(served, tmp_path, monkeypatch):
    """One read-ahead thread, every block hinted: the read of the last member takes its block over from the
    queue (cancelling that task runs its callbacks: never under the fill's lock) and gets the bytes."""
    copy, url, _ = served
    monkeypatch.setattr(cache_blocks, "BLOCK", BLOCK)
    monkeypatch.setattr(cache_blocks, "MAX_IN_FLIGHT", 1)
    ss = storage(url, tmp_path / "cache")
    name = ss.shard_names[0]
    starts, ends, crcs = ss.members(name)
    ss.storage.prefetch(name, [cache_blocks.Extent(int(a), int(b - a), int(c)) for a, b, c in zip(starts, ends, crcs)])
    last = _member(ss, name, -1)
    assert ss.storage.read_into(name, last) == []
    assert bytes(last[0][2]) == (copy / name).read_bytes()[last[0][0]:last[0][0] + last[0][1]]
    ss.close()


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
data[0] ^= 1
(served / "new").write_bytes(bytes(data))
(served / "new").replace(victim)
try:
    for _ in it:
        pass
except ShardReadError as exc:
    print("RAISED", exc, flush=True)
"""


def test_dataloader_workers_name_a_shard_replaced_mid_epoch(served, tmp_path):
    """Two DataLoader workers sharing the private cache: the shard replaced after the first batch is named."""
    copy, url, _ = served
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", _REPLACED, url, str(copy)], capture_output=True, text=True, env=env,
                       timeout=120)
    victim = ShardSet.open(copy).shard_names[-1]
    assert "RAISED" in r.stdout and victim in r.stdout, r.stderr[-3000:]
    assert "the shard changed since the set was opened" in r.stdout
    assert not list(tmp_path.glob("shardkit-shards-*"))  # the private cache went with its process
