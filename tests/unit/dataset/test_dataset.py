"""ShardDataset in-process (num_workers=0): batch contents, labels, crops, padding, errors."""

import os
import pickle

import numpy as np
import pytest
import torch
from read_fixtures import RECORDINGS, Sample, make_set, write_shard_set

from shardkit.dataset import ShardDataset
from shardkit.dataset.cursor import SharedInt
from shardkit.errors import ShardReadError, UsageError
from shardkit.read import ShardSet


def _all(ds):
    return list(iter(ds))


def test_whole_segments_batch(segs):
    path, by_key = segs
    ds = ShardDataset(path, batch_size=5, shuffle=False)
    assert ds.partial == "keep" and ds.crop_frames == 160
    batches = _all(ds)
    assert len(batches) == len(ds) == 5
    assert [len(b["keys"]) for b in batches] == [5, 5, 5, 5, 2]
    keys = [k for b in batches for k in b["keys"]]
    assert keys == list(by_key)  # no shuffle: natural order
    for b in batches:
        assert b["audio"].dtype == torch.int16 and b["audio"].shape[1] == 160
        assert b["valid"].dtype == torch.bool and b["valid"].all()
        assert b["index"].dtype == torch.int64
        for row, k in zip(b["audio"], b["keys"]):
            pcm = by_key[k].pcm
            assert np.array_equal(row[:len(pcm)].numpy(), pcm)
            assert not row[len(pcm):].any()  # zero-padded to the longest segment


def test_labels_multi_hot_with_secondary_weight(segs):
    path, by_key = segs
    ds = ShardDataset(path, batch_size=22, shuffle=False, secondary_weight=0.5)
    b = next(iter(ds))
    assert b["labels"].dtype == torch.float32 and b["labels"].shape == (22, 3)
    for row, k in zip(b["labels"].tolist(), b["keys"]):
        want = [0.0, 0.0, 0.0]
        for s in by_key[k].secondary:
            want["abc".index(s)] = 0.5
        want["abc".index(by_key[k].label)] = 1.0
        assert row == want


def test_classes_remap_and_drop(segs, caplog):
    path, by_key = segs
    ds = ShardDataset(path, batch_size=22, shuffle=False, classes=["c", "zz", "a"])
    assert "not in classes" in caplog.text
    b = next(iter(ds))
    assert b["labels"].shape == (22, 3)
    for row, k in zip(b["labels"].tolist(), b["keys"]):
        s = by_key[k]
        assert row[0] == (1.0 if s.label == "c" or "c" in s.secondary else 0.0)
        assert row[1] == 0.0
        assert row[2] == (1.0 if s.label == "a" or "a" in s.secondary else 0.0)


def test_shuffle_pad_gives_equal_full_batches(segs):
    path, by_key = segs
    ds = ShardDataset(path, batch_size=4, shuffle=True, shuffle_window=1000, rank=1, world_size=2)
    assert ds.partial == "pad" and len(ds) == 3  # ceil(22 / 8)
    batches = _all(ds)
    assert all(b["audio"].shape == (4, 160) for b in batches)
    both = [ShardDataset(path, batch_size=4, shuffle_window=1000, rank=r, world_size=2) for r in (0, 1)]
    valid = [k for d in both for b in _all(d) for k, v in zip(b["keys"], b["valid"]) if v]
    assert sorted(valid) == sorted(by_key)


def test_recordings_mode_crops(tmp_path):
    path, by_key = make_set(tmp_path / "rec", [[4000, 1000, 16000], [300, 9000]], layout=RECORDINGS)
    with pytest.raises(UsageError, match="crop_seconds"):
        ShardDataset(path)
    ds = ShardDataset(path, batch_size=10, crop_seconds=0.1, crops_per_recording=2, shuffle=True, seed=5)
    assert ds.crop_frames == 1600 and len(ds) == 1 and ds.num_items == 10
    b = next(iter(ds))
    assert b["audio"].shape == (10, 1600)
    assert sorted(b["keys"]) == sorted(k for k in by_key for _ in range(2))
    for row, k in zip(b["audio"].numpy(), b["keys"]):
        pcm = by_key[k].pcm
        if len(pcm) <= 1600:
            assert np.array_equal(row[:len(pcm)], pcm) and not row[len(pcm):].any()
        else:  # a crop: some window of the recording
            windows = np.lib.stride_tricks.sliding_window_view(pcm, 1600)
            assert (windows == row).all(axis=1).any()
    ds.set_epoch(1)
    b2 = next(iter(ds))
    assert not torch.equal(b["audio"], b2["audio"])


def test_eval_crops_are_fixed_and_spread(tmp_path):
    path, by_key = make_set(tmp_path / "rec", [[10000]], layout=RECORDINGS)
    ds = ShardDataset(path, batch_size=3, crop_seconds=0.0625, crops_per_recording=3, shuffle=False)
    b = next(iter(ds))
    pcm = by_key[b["keys"][0]].pcm
    for row, off in zip(b["audio"].numpy(), (0, 4500, 9000)):
        assert np.array_equal(row, pcm[off:off + 1000])


def test_multichannel_batches_are_b_c_t(tmp_path):
    path, by_key = make_set(tmp_path / "st", [[100, 80]], channels=2)
    b = next(iter(ShardDataset(path, batch_size=2, shuffle=False)))
    assert b["audio"].shape == (2, 2, 100)
    for row, k in zip(b["audio"].numpy(), b["keys"]):
        pcm = by_key[k].pcm
        assert np.array_equal(row[:, :len(pcm)], pcm.T) and not row[:, len(pcm):].any()


def test_metadata(segs):
    b = next(iter(ShardDataset(segs[0], batch_size=3, shuffle=False, with_metadata=True)))
    assert [m["key"] for m in b["meta"]] == b["keys"]
    assert "meta" not in next(iter(ShardDataset(segs[0], batch_size=3, shuffle=False)))


def test_errors_raise_or_skip(segs):
    path, by_key = segs
    ss = ShardSet.open(path)
    os.truncate(path / "shard-00001.tar", int(ss.wav_offset[ss.find("src1/rec0002-0000")]) + 60)
    # shrunk under the open set: every sample of that shard fails, naming the first one read
    with pytest.raises(ShardReadError, match=r"shard-00001\.tar.*src1/rec0000-0000.*changed since the set was "
                       r"opened.*verify"):
        _all(ShardDataset(ss, batch_size=4, shuffle=False))
    ds = ShardDataset(ss, batch_size=4, shuffle=False, on_error="skip", with_metadata=True)
    batches = _all(ds)
    bad = {k for b in batches for k, v in zip(b["keys"], b["valid"]) if not v}
    assert bad == {f"src1/rec{j:04d}-0000" for j in range(6)}
    assert ds.stats["skipped"] >= 6 and ds.stats["batches"] == len(batches)
    for b in batches:
        for row, lab, k, v in zip(b["audio"], b["labels"], b["keys"], b["valid"]):
            if not v:
                assert not row.any() and not lab.any()
            else:
                assert np.array_equal(row[:len(by_key[k].pcm)].numpy(), by_key[k].pcm)
    os.remove(path / "shard-00003.tar")
    ds = ShardDataset(ss, batch_size=4, shuffle=False, on_error="skip")
    ss.close()  # forget the open descriptors: the next read must open the (missing) file
    batches = _all(ds)
    assert sum(1 for b in batches for v in b["valid"] if not v) == 6 + 3  # shard 1 changed, shard 3 gone
    with pytest.raises(ShardReadError):
        _all(ShardDataset(ss, batch_size=4, shuffle=False))
    with pytest.raises(ShardReadError, match=r"shard-00003\.tar: cannot open"):
        ss.read_frames(int(ss.shard_ptr[3]))


def test_usage_errors(segs, tmp_path):
    path = segs[0]
    with pytest.raises(UsageError):
        ShardDataset(path, batch_size=0)
    with pytest.raises(UsageError):
        ShardDataset(path, partial="wrap")
    with pytest.raises(UsageError):
        ShardDataset(path, on_error="ignore")
    with pytest.raises(UsageError):
        ShardDataset(path, crops_per_recording=2)
    with pytest.raises(UsageError):
        ShardDataset(path, shuffle_window="lots")
    with pytest.raises(UsageError):
        ShardDataset(path, rank=2, world_size=2)
    with pytest.raises(UsageError):
        ShardDataset(path, crop_seconds=1e-9)


def test_drop_with_too_few_items_warns(segs, caplog):
    ds = ShardDataset(segs[0], batch_size=16, partial="drop", rank=0, world_size=2)
    assert len(ds) == 0 and _all(ds) == [] and "gets no batch" in caplog.text


def test_shared_epoch_pickles_to_a_plain_int():
    e = SharedInt(3)
    e.value = 7
    copy = pickle.loads(pickle.dumps(e))
    assert copy.value == 7 and copy._raw is None
    copy.value = 9
    assert e.value == 7


def test_no_label_set(tmp_path):
    path = write_shard_set(tmp_path / "n", [[Sample("a", np.zeros(5, np.int16))]])
    b = next(iter(ShardDataset(path, batch_size=1)))
    assert b["labels"].shape == (1, 0)


@pytest.mark.parametrize("threads", [1, 2])
def test_more_shards_per_batch_than_open_files(segs, monkeypatch, threads):
    from shardkit.storage import local as storage

    monkeypatch.setattr(storage, "MAX_OPEN_SHARDS", 2)
    path, by_key = segs
    ds = ShardDataset(path, batch_size=22, shuffle=True, shuffle_window="1GB", read_threads=threads)
    assert len(set(ds.shard_set.shard_id.tolist())) > 2
    b = next(iter(ds))
    assert ds.shard_set.storage.open_files <= 2
    for row, k in zip(b["audio"].numpy(), b["keys"]):
        assert np.array_equal(row[:len(by_key[k].pcm)], by_key[k].pcm)
