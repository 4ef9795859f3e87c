"""The shard cache of object-storage sets (shardkit/storage/cache/store.py): verified before it is used, one
download per shard across processes, a byte bound with LRU eviction that never evicts an entry in use, nothing
torn."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time

import pytest

from shardkit.errors import UsageError
from shardkit.storage.cache.store import CorruptShard, ShardCache


def _blob(n: int, seed: int = 0) -> tuple[bytes, str]:
    data = bytes((seed + i * 7) % 251 for i in range(n))
    return data, hashlib.sha256(data).hexdigest()


def _download(data: bytes, piece: int = 1000, pause: float = 0.0):
    def download(write):
        for a in range(0, len(data), piece):
            write(data[a:a + piece])
            if pause:
                time.sleep(pause)
    return download


def _read(fd: int, n: int) -> bytes:
    try:
        return os.pread(fd, n + 1, 0)
    finally:
        os.close(fd)


def test_an_entry_is_downloaded_once_verified_and_reused(tmp_path):
    cache = ShardCache(tmp_path, 10_000)
    data, sha = _blob(5000)
    calls = []
    fd = cache.get(sha, len(data), lambda w: (calls.append(1), _download(data)(w)))
    assert _read(fd, len(data)) == data
    assert _read(cache.get(sha, len(data), _download(b"never called")), len(data)) == data
    assert calls == [1] and cache.used() == 5000 and list((tmp_path / "tmp").glob("*.part")) == []


def test_a_download_that_does_not_match_the_manifest_is_neither_cached_nor_read(tmp_path):
    cache = ShardCache(tmp_path, 10_000)
    data, sha = _blob(5000)
    bad = bytearray(data)
    bad[100] ^= 1
    with pytest.raises(CorruptShard, match="the manifest says 5000 bytes"):
        cache.get(sha, len(data), _download(bytes(bad)), "s3://b/shard-0.tar")
    with pytest.raises(CorruptShard):
        cache.get(sha, len(data), _download(data[:-1]))
    assert cache.entries() == [] and list((tmp_path / "tmp").glob("*.part")) == []
    assert cache.open(sha, len(data)) is None


def test_the_bound_holds_least_recently_used_go_first_and_an_entry_in_use_stays(tmp_path):
    cache = ShardCache(tmp_path, 10_000)
    blobs = [_blob(3000, seed) for seed in range(5)]
    pinned = cache.get(blobs[0][1], 3000, _download(blobs[0][0]))  # held open: in use
    for data, sha in blobs[1:3]:
        os.close(cache.get(sha, 3000, _download(data)))
    time.sleep(0.01)
    os.close(cache.get(blobs[1][1], 3000, _download(b"")))  # a hit: blob 1 is now the most recently used
    os.close(cache.get(blobs[3][1], 3000, _download(blobs[3][0])))  # 12,000 > 10,000: one must go
    names = {p.name for _, _, p in cache.entries()}
    assert f"{blobs[0][1]}.tar" in names  # oldest, but in use
    assert f"{blobs[2][1]}.tar" not in names  # least recently used of the rest
    assert cache.used() <= 10_000
    assert _read(pinned, 3000) == blobs[0][0]  # unpinned now
    os.close(cache.get(blobs[4][1], 3000, _download(blobs[4][0])))
    assert cache.used() <= 10_000 and f"{blobs[0][1]}.tar" not in {p.name for _, _, p in cache.entries()}


def test_a_shard_larger_than_the_cache_is_not_cached(tmp_path):
    data, sha = _blob(5000)
    assert ShardCache(tmp_path, 4000).get(sha, len(data), _download(data)) is None


def test_a_crashed_download_leaves_no_entry(tmp_path):
    cache = ShardCache(tmp_path, 10_000)
    data, sha = _blob(5000)

    def crash(write):
        write(data[:2000])
        raise ConnectionError("cut")

    with pytest.raises(ConnectionError):
        cache.get(sha, len(data), crash)
    (tmp_path / "tmp" / f"{sha}.123.456.part").write_bytes(data[:100])  # a killed process's leftover
    assert cache.open(sha, len(data)) is None and cache.entries() == []


def _worker(root: str, sha: str, size: int, data: bytes, out) -> None:
    cache = ShardCache(root, 10 * size)
    calls = []
    fd = cache.get(sha, size, lambda w: (calls.append(1), _download(data, 500, 0.002)(w)))
    got = _read(fd, size)
    out.put((len(calls), hashlib.sha256(got).hexdigest()))


def test_processes_needing_one_shard_share_one_download_and_never_see_it_torn(tmp_path):
    data, sha = _blob(20_000)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), sha, len(data), data, out)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(10)
    assert sum(n for n, _ in results) == 1  # one process downloaded; the others waited and read its entry
    assert {h for _, h in results} == {sha}


# -- issue 22: planted files, FIFOs, lock files, unusable and full cache folders ----------------------------------


def test_a_planted_file_of_the_right_size_is_dropped_and_fetched_again(tmp_path):
    cache = ShardCache(tmp_path, 10_000)
    data, sha = _blob(5000)
    cache.path(sha).write_bytes(b"\0" * len(data))  # someone's file under the entry's name, the shard's size
    calls = []
    fd = cache.get(sha, len(data), lambda w: (calls.append(1), _download(data)(w)))
    assert _read(fd, len(data)) == data and calls == [1]
    assert _read(cache.get(sha, len(data), _download(b"never called")), len(data)) == data and calls == [1]
    cache.path(sha).write_bytes(b"\1" * 10)  # another size: also dropped and fetched again
    assert _read(cache.get(sha, len(data), _download(data)), len(data)) == data


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "symlink", "folder"])
def test_a_planted_fifo_symlink_or_folder_never_hangs_nor_is_read(tmp_path, kind):
    cache = ShardCache(tmp_path / "c", 10_000)
    data, sha = _blob(5000)
    outside = tmp_path / "outside"
    outside.write_bytes(b"\0" * len(data))
    if kind == "fifo":
        os.mkfifo(cache.path(sha))
    elif kind == "symlink":
        cache.path(sha).symlink_to(outside)
    else:
        cache.path(sha).mkdir()
    if kind == "folder":
        with pytest.raises(UsageError, match=rf"{sha}\.tar.*not a regular file"):
            cache.get(sha, len(data), _download(data))
        return
    assert _read(cache.get(sha, len(data), _download(data)), len(data)) == data
    assert outside.read_bytes() == b"\0" * len(data) and cache.path(sha).is_file() and not cache.path(sha).is_symlink()


def test_lock_files_are_removed(tmp_path):
    cache = ShardCache(tmp_path, 100_000)
    for seed in range(3):
        data, sha = _blob(3000, seed)
        os.close(cache.get(sha, len(data), _download(data)))
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("where", ["file", "proc"])
def test_an_unusable_cache_dir_is_a_usage_error(tmp_path, where):
    folder = tmp_path / "afile" if where == "file" else "/proc/shardkit-cache"
    if where == "file":
        folder.write_text("x")
    with pytest.raises(UsageError, match=r"cache_dir .* cannot be used"):
        ShardCache(folder, 10_000)
