"""LocalStorage: ranged reads into caller buffers, per-range errors, descriptors per process and thread."""

import os
import pickle
import threading

import pytest

from shardkit.read import ShardSet
from shardkit.storage.base import ByteRange, OpenFailed, ShortRead, Storage
from shardkit.storage.local import LocalStorage


@pytest.fixture
def store(tmp_path):
    (tmp_path / "a.bin").write_bytes(bytes(range(256)) * 4)   # 1024 bytes
    (tmp_path / "b.bin").write_bytes(b"x" * 10)
    return LocalStorage(tmp_path)


def _buf(n):
    b = bytearray(n)
    return b, memoryview(b)


def test_is_a_storage_and_reads_whole_objects(store, tmp_path):
    assert isinstance(store, Storage)
    assert store.read_bytes("b.bin") == b"x" * 10 and store.size("a.bin") == 1024
    assert store.describe("a.bin") == str(tmp_path / "a.bin")
    with pytest.raises(FileNotFoundError):
        store.size("nope.bin")
    with pytest.raises(FileNotFoundError):
        store.read_bytes("nope.bin")


def test_ranges_fill_their_buffers(store):
    (b1, v1), (b2, v2), (b3, v3) = _buf(4), _buf(8), _buf(3)
    errors = store.read_into("a.bin", [ByteRange(0, 4, v1), (250, 8, v2), (1021, 3, v3)])
    assert errors == []
    assert bytes(b1) == bytes([0, 1, 2, 3]) and bytes(b2) == bytes([250, 251, 252, 253, 254, 255, 0, 1])
    assert bytes(b3) == bytes([253, 254, 255])


def test_a_range_longer_than_needed_buffer_is_filled_to_length(store):
    b, v = _buf(10)
    assert store.read_into("a.bin", [(5, 4, v)]) == []
    assert bytes(b) == bytes([5, 6, 7, 8]) + bytes(6)


def test_short_read_at_eof_fails_that_range_only(store):
    (b1, v1), (_, v2), (b3, v3) = _buf(4), _buf(8), _buf(2)
    errors = store.read_into("a.bin", [(0, 4, v1), (1020, 8, v2), (10, 2, v3)])
    assert [k for k, _ in errors] == [1]
    err = errors[0][1]
    assert isinstance(err, ShortRead) and (err.got, err.wanted, err.offset) == (4, 8, 1020)
    assert "a.bin" in str(err)
    assert bytes(b1) == bytes([0, 1, 2, 3]) and bytes(b3) == bytes([10, 11])


def test_missing_file_fails_every_range_naming_the_file(store, tmp_path):
    errors = store.read_into("gone.bin", [(0, 1, _buf(1)[1]), (5, 1, _buf(1)[1])])
    assert [k for k, _ in errors] == [0, 1]
    err = errors[0][1]
    assert isinstance(err, OpenFailed) and err.where == str(tmp_path / "gone.bin") and "gone.bin" in str(err)
    assert store.open_files == 0  # a failed open is not cached: the next call tries again
    (tmp_path / "gone.bin").write_bytes(b"ok")
    b, v = _buf(2)
    assert store.read_into("gone.bin", [(0, 2, v)]) == [] and bytes(b) == b"ok"


def test_descriptors_are_capped_lru(tmp_path):
    for n in range(5):
        (tmp_path / f"{n}.bin").write_bytes(bytes([n]) * 4)
    store = LocalStorage(tmp_path, max_open=2)
    for n in range(5):
        b, v = _buf(1)
        assert store.read_into(f"{n}.bin", [(0, 1, v)]) == [] and b[0] == n
        assert store.open_files <= 2
    store.close()
    assert store.open_files == 0
    b, v = _buf(1)
    assert store.read_into("0.bin", [(0, 1, v)]) == [] and b[0] == 0  # reopens after close


def test_pickles_to_its_root(store):
    b, v = _buf(1)
    store.read_into("a.bin", [(7, 1, v)])
    copy = pickle.loads(pickle.dumps(store))
    assert copy.root == store.root and copy.open_files == 0 and store.open_files == 1
    assert copy.read_into("a.bin", [(7, 1, v)]) == [] and b[0] == 7


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_process_opens_its_own_descriptors(store):
    store.read_into("a.bin", [(3, 1, _buf(1)[1])])
    parent_fd = store.fd("a.bin")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            bb = bytearray(1)
            # the inherited table is dropped (and its descriptors closed in the child), then refilled
            ok = store.open_files == 0 and store.read_into("a.bin", [(9, 1, memoryview(bb))]) == [] and bb[0] == 9
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.waitpid(pid, 0)
    os.close(r)
    assert store.open_files == 1 and store.fd("a.bin") == parent_fd  # the parent's table is untouched


def test_threads_share_one_storage(tmp_path):
    names = [f"{n}.bin" for n in range(6)]
    for n, name in enumerate(names):
        (tmp_path / name).write_bytes(bytes([n]) * 4096)
    store = LocalStorage(tmp_path, max_open=2)  # a small cap: threads evict each other's idle files
    failures = []

    def work(k):
        for rep in range(200):
            name = names[(k + rep) % len(names)]
            bufs = [_buf(64) for _ in range(4)]
            errors = store.read_into(name, [(64 * i, 64, v) for i, (_, v) in enumerate(bufs)])
            if errors or any(bytes(b) != bytes([int(name[0])]) * 64 for b, _ in bufs):
                failures.append((k, rep, name, errors))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == [] and store.open_files <= 2


def test_shard_set_reads_through_its_storage(tmp_path):
    from read_fixtures import make_set

    path, by_key = make_set(tmp_path / "s", [[50, 60], [70]])
    calls = []

    class Counting(LocalStorage):
        def read_bytes(self, name):
            calls.append(("read_bytes", name))
            return super().read_bytes(name)

        def read_into(self, name, ranges):
            calls.append(("read_into", name))
            return super().read_into(name, ranges)

    ss = ShardSet.open(path, storage=Counting(path))
    assert ("read_bytes", "manifest.json") in calls and sum(c[0] == "read_bytes" for c in calls) == 1 + 2
    k = ss.keys[2]
    assert (ss.read_frames(2) == by_key[k].pcm).all() and calls[-1] == ("read_into", ss.shard_names[1])
    ss.read_meta(0)
    assert calls[-1] == ("read_into", ss.shard_names[0])
