"""Window read-ahead: which members a window hints (pure functions over plan arrays), LocalStorage.prefetch
(fadvise / read thread, data unchanged, bounded, fork reset) and batches the same with and without it."""

import os
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from read_fixtures import make_set

from shardkit.dataset import ShardDataset, plan
from shardkit.dataset.assemble.readahead import ReadAhead
from shardkit.dataset.order.shuffle import OrderSpec, epoch_order, window_bounds, window_extents, window_items
from shardkit.read import ShardSet
from shardkit.storage import local as storage_mod
from shardkit.storage.base import Capabilities, Extent
from shardkit.storage.local import LocalStorage, coalesce


def _layout(sizes):
    """shard_ptr, shard_id, wav_offset, sample_bytes of shards of the given member sizes (tar-like offsets)."""
    shard_ptr = np.cumsum([0] + [len(s) for s in sizes]).astype(np.int64)
    shard_id = np.repeat(np.arange(len(sizes)), [len(s) for s in sizes]).astype(np.int32)
    offsets = np.concatenate([np.cumsum([512] + [b + 1024 for b in s[:-1]]) for s in sizes]).astype(np.int64)
    return shard_ptr, shard_id, offsets, np.concatenate([np.asarray(s, np.int64) for s in sizes])


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.lists(st.integers(1, 5000), min_size=1, max_size=8), min_size=1, max_size=5),
       window=st.integers(1, 20000), crops=st.integers(1, 3), seed=st.integers(0, 2**32), shuffle=st.booleans(),
       world=st.integers(1, 3), workers=st.integers(1, 3), batch=st.integers(1, 7))
def test_hinted_members_cover_every_read_of_an_epoch(sizes, window, crops, seed, shuffle, world, workers, batch):
    shard_ptr, shard_id, offsets, nbytes = _layout(sizes)
    spec = OrderSpec(shard_ptr, nbytes, seed=seed, epoch=1, shuffle=shuffle, window_bytes=window,
                     crops_per_recording=crops)
    order, bounds = epoch_order(spec), window_bounds(spec)
    assert bounds[0] == 0 and bounds[-1] == len(order) and np.all(np.diff(bounds) > 0)
    for rank in range(world):
        rp = plan.plan_rank(len(order), world_size=world, rank=rank, batch_size=batch, partial="keep")
        for w in range(workers):
            pos = np.concatenate([np.zeros(0, np.int64)] + [rp.positions(t)[0] for t in rp.worker_batches(w, workers)])
            parts = window_items(pos, bounds)
            assert sorted(np.concatenate([np.zeros(0, np.int64), *parts]).tolist()) == sorted(pos.tolist())
            hinted = set()
            for k, part in enumerate(parts):
                assert np.all((part >= bounds[k]) & (part < bounds[k + 1]))
                shards = [s for s, _ in window_extents(order[part], crops, shard_id, offsets, nbytes)]
                assert shards == sorted(set(shards))
                for s, rows in window_extents(order[part], crops, shard_id, offsets, nbytes):
                    assert np.all(shard_id[rows] == s) and np.all(np.diff(offsets[rows]) > 0)
                    hinted.update((int(s), int(offsets[r]), int(nbytes[r])) for r in rows)
            # every item read (its whole member, so any crop of it) lies inside a hinted member
            need = {(int(shard_id[i]), int(offsets[i]), int(nbytes[i])) for i in (order[pos] // crops).tolist()}
            assert need <= hinted and len(hinted) == len(need)


def test_rarely_used_members_are_not_hinted():
    shard_id, offsets = np.zeros(3, np.int32), np.array([0, 10_000, 20_000])
    nbytes, used = np.array([1000, 1000, 1000]), np.array([900, 100, 400])
    rows = window_extents(np.array([0, 1, 2, 2]), 1, shard_id, offsets, nbytes, read_bytes=used, min_use=0.5)
    assert [r.tolist() for _, r in rows] == [[0, 2]]   # sample 2 is read twice: 800 of 1000 bytes


def test_coalesce_merges_neighbours_and_cuts_long_ranges():
    ext = [Extent(0, 100, 0), Extent(600, 100, 0), Extent(5000, 10, 0), Extent(10_000, 2500, 0)]
    assert coalesce(ext, gap=1000, chunk=1000) == [(0, 700), (5000, 10), (10_000, 1000), (11_000, 1000),
                                                   (12_000, 500)]
    assert coalesce([]) == []


def _wait_idle(store, timeout=5.0):
    t0 = time.monotonic()
    while store._jobs is not None and not store._jobs.empty() and time.monotonic() - t0 < timeout:
        time.sleep(0.01)
    time.sleep(0.05)


@pytest.mark.parametrize("mode", ["fadvise", "read"])
def test_prefetch_returns_at_once_and_reads_are_unchanged(tmp_path, monkeypatch, mode):
    data = np.random.default_rng(0).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()
    (tmp_path / "s.tar").write_bytes(data)
    calls = []
    if mode == "fadvise":
        real = os.posix_fadvise
        monkeypatch.setattr(storage_mod.os, "posix_fadvise", lambda fd, off, n, adv: (calls.append((off, n, adv)),
                                                                                       real(fd, off, n, adv))[1])
    monkeypatch.setattr(storage_mod, "READAHEAD_CHUNK", 1 << 20)
    store = LocalStorage(tmp_path, readahead=mode)
    t0 = time.perf_counter()
    store.prefetch("s.tar", [Extent(0, 100, 0), Extent(1000, 2 << 20, 0)])
    assert time.perf_counter() - t0 < 0.5
    _wait_idle(store)
    if mode == "fadvise":
        end = 1000 + (2 << 20)
        assert calls == [(0, 1 << 20, os.POSIX_FADV_WILLNEED), (1 << 20, 1 << 20, os.POSIX_FADV_WILLNEED),
                         (2 << 20, end - (2 << 20), os.POSIX_FADV_WILLNEED)]
    buf = bytearray(5000)
    assert store.read_into("s.tar", [(1000, 5000, memoryview(buf))]) == []
    assert bytes(buf) == data[1000:6000]
    store.prefetch("missing.tar", [Extent(0, 10, 0)])     # a hint: never raises, not even later
    _wait_idle(store)
    store.close()


def test_read_mode_holds_one_chunk_and_no_data_of_its_own(tmp_path):
    (tmp_path / "s.tar").write_bytes(b"\1" * (3 << 20))
    store = LocalStorage(tmp_path, readahead="read")
    store.prefetch("s.tar", [Extent(0, 3 << 20, 0)])
    _wait_idle(store)
    thread = store._ahead_thread
    assert thread is not None and thread.daemon and thread.is_alive()
    assert store._jobs.empty()        # nothing is kept: the pages live in the kernel's cache
    store.close()
    thread.join(5)
    assert not thread.is_alive() and store._jobs is None   # close() ends it; the next hint starts another


def test_off_and_pickle(tmp_path):
    import pickle

    store = LocalStorage(tmp_path, readahead="off")
    store.prefetch("x", [Extent(0, 1, 0)])
    assert store._jobs is None
    clone = pickle.loads(pickle.dumps(LocalStorage(tmp_path, readahead="read")))
    assert clone.readahead == "read" and clone._jobs is None
    with pytest.raises(ValueError):
        LocalStorage(tmp_path, readahead="sometimes")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_forked_child_starts_its_own_read_ahead_thread(tmp_path):
    (tmp_path / "s.tar").write_bytes(b"\2" * 4096)
    store = LocalStorage(tmp_path, readahead="read")
    store.prefetch("s.tar", [Extent(0, 4096, 0)])
    _wait_idle(store)
    parent_thread = store._ahead_thread
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        ok = 0
        try:
            store.prefetch("s.tar", [Extent(0, 4096, 0)])
            _wait_idle(store)
            buf = bytearray(4096)
            ok = int(store._ahead_thread is not parent_thread and store._ahead_thread.is_alive()
                     and store.read_into("s.tar", [(0, 4096, memoryview(buf))]) == [] and buf == b"\2" * 4096)
        finally:
            os.write(w, bytes([ok]))
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"\1"
    os.waitpid(pid, 0)
    os.close(r)
    store.close()


class _Recorder(LocalStorage):
    def __init__(self, root):
        super().__init__(root, readahead="off")
        self.hints = []

    capabilities = Capabilities(reads_ahead=True)  # a storage that wants hints (as an object store does)

    def prefetch(self, name, extents):
        self.hints.append((name, list(extents)))


def test_reader_hints_each_window_once_sorted_with_crcs(tmp_path):
    root, _ = make_set(tmp_path / "s", [[160] * 6, [160] * 5, [160] * 7, [160] * 3])
    ss = ShardSet.open(root, storage=_Recorder(root))
    ds = ShardDataset(ss, batch_size=4, shuffle_window=4 * 400, seed=3)   # ~4 samples per window
    batches = list(ds)
    hints = ss.storage.hints
    assert hints and len(batches) == len(ds)
    seen = set()
    for name, extents in hints:
        offs = [e.offset for e in extents]
        assert offs == sorted(offs)
        for e in extents:
            i = next(j for j in range(len(ss))
                     if ss.shard_names[ss.shard_id[j]] == name and ss.wav_offset[j] == e.offset)
            assert e.length == ss.sample_bytes[i] and e.crc32 == ss.wav_crc32[i]
            assert (name, e.offset) not in seen          # once per window, and windows are disjoint
            seen.add((name, e.offset))
    assert len(seen) == len(ss)


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_are_the_same_with_and_without_read_ahead(tmp_path, workers):
    from torch.utils.data import DataLoader

    root, _ = make_set(tmp_path / "s", [[160] * 9, [120] * 7, [200] * 8])
    out = {}
    for mode, ahead in (("off", False), ("fadvise", True), ("read", True)):
        ss = ShardSet.open(root, storage=LocalStorage(root, readahead=mode))
        ds = ShardDataset(ss, batch_size=5, crop_seconds=0.005, seed=1, shuffle_window=2000, read_ahead=ahead)
        loader = DataLoader(ds, batch_size=None, num_workers=workers, persistent_workers=workers > 0)
        got = []
        for epoch in (0, 1):
            ds.set_epoch(epoch)
            got += [(b["index"].tolist(), b["audio"].numpy().copy(), b["valid"].tolist()) for b in loader]
        out[mode] = got
    for mode in ("fadvise", "read"):
        assert [g[0] for g in out[mode]] == [g[0] for g in out["off"]]
        assert all(np.array_equal(a[1], b[1]) and a[2] == b[2] for a, b in zip(out[mode], out["off"]))


def test_read_ahead_plan_follows_resume_and_ranks(tmp_path):
    root, _ = make_set(tmp_path / "s", [[160] * 9, [160] * 7])
    for rank in (0, 1):
        ss = ShardSet.open(root, storage=_Recorder(root))
        ds = ShardDataset(ss, batch_size=3, seed=2, shuffle_window=2000, rank=rank, world_size=2)
        ds.load_state_dict({**ds.state_dict(0), "consumed": 6})
        read = {int(i) for b in ds for i, v in zip(b["index"], b["valid"]) if v}
        hinted = {(n, e.offset) for n, ext in ss.storage.hints for e in ext}
        assert {(ss.shard_names[ss.shard_id[i]], int(ss.wav_offset[i])) for i in read} <= hinted
    assert isinstance(ReadAhead, type)


def test_local_folders_read_ahead_auto_by_default_and_read_ahead_false_turns_hints_off(tmp_path):
    root, _ = make_set(tmp_path / "s", [[160] * 6, [160] * 5])
    plain = ShardDataset(root, batch_size=4)
    assert plain.shard_set.storage.readahead == "auto"
    os.sync()                                                    # dirty pages are not dropped
    for name in plain.shard_set.shard_names:                     # cold: read ahead
        os.posix_fadvise(plain.shard_set.storage.fd(name), 0, 0, os.POSIX_FADV_DONTNEED)
    assert plain.shard_set.storage.resident_share(plain.shard_set.shard_names) < 0.5 and plain._reads_ahead()
    for name in plain.shard_set.shard_names:                     # all of it cached: not even the hints
        os.pread(plain.shard_set.storage.fd(name), 1 << 24, 0)
    assert plain.shard_set.storage.resident_share(plain.shard_set.shard_names) == 1.0
    assert not plain._reads_ahead()
    off = ShardDataset(root, batch_size=4, read_ahead=False)
    assert not off._reads_ahead()
    forced = ShardDataset(ShardSet.open(root, storage=LocalStorage(root, readahead="off")), batch_size=4,
                          read_ahead=True)
    assert forced.shard_set.storage.readahead == "fadvise" and forced._reads_ahead()
    assert [b["keys"] for b in plain] == [b["keys"] for b in off] == [b["keys"] for b in forced]


def test_auto_read_ahead_hints_only_ranges_not_in_the_page_cache(tmp_path, monkeypatch):
    """``"auto"``: a range whose pages are all resident gets no ``fadvise``; a dropped one does."""
    (tmp_path / "a.bin").write_bytes(os.urandom(4 << 20))
    os.sync()
    store = LocalStorage(tmp_path)
    fd = store.fd("a.bin")
    os.pread(fd, 1 << 20, 0)                                   # the first MiB resident
    os.posix_fadvise(fd, 2 << 20, 2 << 20, os.POSIX_FADV_DONTNEED)
    advised = []
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, off, n, advice: advised.append((off, n)))
    store._ahead_job(store._acquire("a.bin"), [(0, 1 << 20), (2 << 20, 1 << 20)], store._ahead_gen, None)
    assert advised == [(2 << 20, 1 << 20)]
