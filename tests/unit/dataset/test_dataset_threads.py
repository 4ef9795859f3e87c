"""Reading threads: the same batches and the same errors for any ``read_threads``, also after a fork."""

import os
import threading

import numpy as np
import pytest
import torch
from read_fixtures import RECORDINGS, make_set

from shardkit.dataset import ShardDataset
from shardkit.errors import ShardReadError, UsageError
from shardkit.read import ShardSet


def _batches(ds):
    return [{k: v for k, v in b.items()} for b in ds]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x["keys"] == y["keys"]
        for name in ("audio", "labels", "valid", "index"):
            assert torch.equal(x[name], y[name]), name


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_read_the_same_batches(segs, tmp_path, threads):
    path, _ = segs
    ref = _batches(ShardDataset(path, batch_size=8, seed=3, read_threads=1))
    _same(ref, _batches(ShardDataset(path, batch_size=8, seed=3, read_threads=threads)))
    rec, _ = make_set(tmp_path / "rec", [[4000, 1000, 16000], [300, 9000]], layout=RECORDINGS)
    kw = {"batch_size": 10, "crop_seconds": 0.1, "crops_per_recording": 2, "seed": 5}
    _same(_batches(ShardDataset(rec, read_threads=1, **kw)), _batches(ShardDataset(rec, read_threads=threads, **kw)))


def test_errors_are_the_same_with_threads(segs):
    path, _ = segs
    ss = ShardSet.open(path)
    os.truncate(path / "shard-00001.tar", int(ss.wav_offset[ss.find("src1/rec0002-0000")]) + 60)
    with pytest.raises(ShardReadError, match=r"shard-00001\.tar.*src1/rec0000-0000.*changed since.*verify"):
        _batches(ShardDataset(ss, batch_size=8, shuffle=False, read_threads=2))

    def bad(threads):
        ds = ShardDataset(ss, batch_size=8, shuffle=False, on_error="skip", read_threads=threads)
        return {k for b in ds for k, v in zip(b["keys"], b["valid"]) if not v}, ds.stats["skipped"]

    assert bad(2) == bad(1) and bad(2)[0] == {f"src1/rec{j:04d}-0000" for j in range(6)}
    os.remove(path / "shard-00003.tar")
    ss.close()  # the next read must open the (missing) file: in the threaded path, before the threads start
    assert bad(2) == bad(1) and len(bad(2)[0]) == 6 + 3  # shard 1 changed, shard 3 gone
    with pytest.raises(UsageError, match="read_threads"):
        ShardDataset(ss, read_threads=0)


def test_forked_workers_make_their_own_threads(segs):
    path, _ = segs
    ds = ShardDataset(path, batch_size=8, shuffle=False, read_threads=2)
    ref = _batches(ds)                            # the pool now exists in this process
    assert any(t.name.startswith("shardkit-read") for t in threading.enumerate())
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork")
    got = sorted(_batches(loader), key=lambda b: int(b["index"][0]))
    _same(sorted(ref, key=lambda b: int(b["index"][0])), got)
    for b in got:
        assert np.all(b["valid"].numpy())
