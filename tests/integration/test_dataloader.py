"""ShardDataset through a real torch DataLoader with worker processes and simulated ranks."""

from collections import Counter

import numpy as np
import pytest
import torch
from read_fixtures import RECORDINGS, make_set
from torch.utils.data import DataLoader

from shardkit.dataset import ShardDataset


@pytest.fixture(scope="module")
def segments(tmp_path_factory):
    """53 segments of 400 frames (a few shorter: tail=keep) in 5 shards of unequal size."""
    lengths = [[400] * 11, [400] * 9 + [123], [400] * 14, [400] * 3, [400] * 14 + [77]]
    return make_set(tmp_path_factory.mktemp("dl") / "segs", lengths, labels=("a", "b", "c", "d", "e"))


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    rng = np.random.default_rng(1)
    lengths = [rng.integers(200, 5000, size=n).tolist() for n in (7, 5, 9)]
    return make_set(tmp_path_factory.mktemp("dl") / "rec", lengths, layout=RECORDINGS)


def _epoch(ds, num_workers, **kw):
    loader = DataLoader(ds, batch_size=None, num_workers=num_workers, **kw)
    batches = list(loader)
    assert len(batches) == len(loader) == len(ds)
    return batches


def _check_audio(batch, by_key, crop=None):
    for row, k in zip(batch["audio"].numpy(), batch["keys"]):
        pcm = by_key[k].pcm
        if crop is None or len(pcm) <= crop:
            assert np.array_equal(row[:len(pcm)], pcm) and not row[len(pcm):].any()
        else:
            assert (np.lib.stride_tricks.sliding_window_view(pcm, crop) == row).all(axis=1).any()


@pytest.mark.parametrize("world", [1, 2, 3])
def test_validation_mode_reads_every_sample_exactly_once(segments, world):
    path, by_key = segments
    seen = []
    for rank in range(world):
        ds = ShardDataset(path, batch_size=4, shuffle=False, rank=rank, world_size=world)
        assert ds.partial == "keep"
        for b in _epoch(ds, 2):
            assert b["valid"].all() and b["audio"].shape[1] == 400
            _check_audio(b, by_key)
            seen += b["keys"]
    assert sorted(seen) == sorted(by_key)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_training_mode_equal_batches_per_rank(segments, world):
    path, by_key = segments
    counts, valid = [], Counter()
    for rank in range(world):
        ds = ShardDataset(path, batch_size=4, shuffle=True, seed=11, shuffle_window="20kB",
                          rank=rank, world_size=world)
        batches = _epoch(ds, 2, pin_memory=True)
        counts.append(len(batches))
        for b in batches:
            assert b["audio"].shape == (4, 400) and b["labels"].shape == (4, 5)
            _check_audio(b, by_key)
            valid.update(k for k, v in zip(b["keys"], b["valid"].tolist()) if v)
    assert len(set(counts)) == 1 and counts[0] == -(-53 // (4 * world))
    assert valid == Counter(list(by_key))  # padding aside, every sample exactly once


def _keys(ds, num_workers, **kw):
    return [k for b in _epoch(ds, num_workers, **kw) for k in b["keys"]]


@pytest.mark.parametrize("world", [1, 3])
def test_order_is_the_same_for_any_number_of_workers(segments, world):
    path, _ = segments
    def make(rank):
        return ShardDataset(path, batch_size=3, seed=7, shuffle_window="30kB", rank=rank, world_size=world)
    for rank in range(world):
        runs = [_keys(make(rank), nw) for nw in (0, 1, 2, 0)]
        assert runs[0] == runs[1] == runs[2] == runs[3]
    # and the global order does not depend on the world size
    one = _keys(ShardDataset(path, batch_size=3, seed=7, shuffle_window="30kB", partial="keep",
                             rank=0, world_size=1), 2)
    per_rank = [[b["keys"] for b in _epoch(ShardDataset(path, batch_size=1, seed=7, shuffle_window="30kB",
                                                        partial="keep", rank=r, world_size=world), 2)]
                for r in range(world)]
    interleaved = [k for t in range(len(per_rank[0])) for r in per_rank if t < len(r) for k in r[t]]
    assert interleaved == one


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_set_epoch_reaches_persistent_workers(segments, context):
    path, _ = segments
    ds = ShardDataset(path, batch_size=5, seed=3, shuffle_window="40kB")
    reference = []
    for epoch in (0, 1, 2):
        ds.set_epoch(epoch)
        reference.append(_keys(ds, 0))
    assert reference[0] != reference[1] != reference[2]
    ds.set_epoch(0)
    loader = DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True,
                        multiprocessing_context=context)
    for epoch in (0, 1, 2):
        ds.set_epoch(epoch)
        assert [k for b in loader for k in b["keys"]] == reference[epoch]


def test_recording_crops_are_identical_across_worker_counts(recordings):
    path, by_key = recordings
    crop = 1000
    def run(nw, epoch):
        ds = ShardDataset(path, batch_size=4, crop_seconds=crop / 16000, crops_per_recording=2, seed=2)
        ds.set_epoch(epoch)
        return _epoch(ds, nw)
    a, b = run(0, 0), run(2, 0)
    assert len(a) == len(b) == -(-21 * 2 // 4)
    for x, y in zip(a, b):
        assert x["keys"] == y["keys"] and torch.equal(x["audio"], y["audio"])
        assert torch.equal(x["valid"], y["valid"]) and torch.equal(x["index"], y["index"])
        _check_audio(x, by_key, crop)
    c = run(2, 1)
    assert any(not torch.equal(x["audio"], z["audio"]) for x, z in zip(a, c))


@pytest.mark.parametrize("pin", [False, True])
def test_streamed_batches_stay_intact_while_slots_are_reused(segments, pin):
    """Workers reuse a few shared-memory slots; a batch must not change while the consumer holds it."""
    from collections import deque

    from shardkit.dataset import transport

    path, by_key = segments
    ds = ShardDataset(path, batch_size=2, seed=5, shuffle_window="20kB", with_metadata=True)
    loader = DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True, pin_memory=pin)
    held, checked, mapped_before = deque(), 0, set(transport._MAPS)
    for epoch in range(3):
        ds.set_epoch(epoch)
        for b in loader:
            held.append(b)
            if len(held) > 3:  # check the oldest after the workers have filled more slots
                old = held.popleft()
                _check_audio(old, by_key)
                assert [m["key"] for m in old["meta"]] == old["keys"]
                assert old["index"].tolist() == [ds.shard_set.find(k) for k in old["keys"]]
                for row, k in zip(old["labels"].tolist(), old["keys"]):
                    assert row[ds.classes.index(by_key[k].label)] == 1.0
                checked += 1
    assert checked == 3 * len(ds) - 3
    if transport.AVAILABLE:  # the workers (still alive: persistent) sent their batches through slots
        assert set(transport._MAPS) - mapped_before, "batches did not travel through the workers' slots"


def test_multichannel_through_workers(tmp_path):
    path, by_key = make_set(tmp_path / "st", [[120, 90, 120], [50, 120]], channels=2)
    ds = ShardDataset(path, batch_size=2, shuffle=False)
    seen = []
    for b in DataLoader(ds, batch_size=None, num_workers=2):
        assert b["audio"].shape[1:] == (2, 120)
        for row, k in zip(b["audio"].numpy(), b["keys"]):
            pcm = by_key[k].pcm
            assert np.array_equal(row[:, :len(pcm)], pcm.T) and not row[:, len(pcm):].any()
            seen.append(k)
    assert sorted(seen) == sorted(by_key)
