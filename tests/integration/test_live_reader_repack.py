"""A shard set re-packed (``--overwrite``: other audio under the same keys) under a running
ShardDataset: a later epoch never reads the new audio under the old keys and labels. A process that
still holds a shard open reads the old file it opened (the same bytes as before); one that opens it
again — after ``close()``, in new DataLoader workers — gets a ShardReadError saying the shard changed
since the set was opened (``on_error="raise"``) or skips and counts every row ("skip"). A new
ShardDataset reads the new set."""

from __future__ import annotations

import pytest
import torch
from audio_factory import make_corpus

from shardkit import PackOptions, pack
from shardkit.dataset import ShardDataset
from shardkit.errors import ShardReadError

OPTS = PackOptions(shard_size="300KB")


@pytest.fixture
def sets(tmp_path):
    old = make_corpus(tmp_path / "old", n_files=10, seed=1)
    new = make_corpus(tmp_path / "new", n_files=10, seed=2)
    out = tmp_path / "set"
    pack(tmp_path / "old" / "audio", out, metadata=old, options=OPTS)
    return out, (tmp_path / "new" / "audio", new)


def _repack(out, new):
    pack(new[0], out, metadata=new[1], options=OPTS, overwrite=True)


def _rows(batches):
    return {k: (bool(v), a.clone()) for b in batches for k, v, a in zip(b["keys"], b["valid"], b["audio"])}


def test_held_shards_keep_reading_the_old_bytes(sets):
    out, new = sets
    ds = ShardDataset(out, batch_size=4, crop_seconds=1.0, shuffle=False)
    before = _rows(ds)
    _repack(out, new)
    after = _rows(ds)
    assert after.keys() == before.keys()
    assert all(v and torch.equal(a, before[k][1]) for k, (v, a) in after.items())


@pytest.mark.parametrize("how", ["close", "workers"])
def test_a_reopened_shard_is_refused(sets, how):
    out, new = sets
    ds = ShardDataset(out, batch_size=4, crop_seconds=1.0, shuffle=False)
    workers = 2 if how == "workers" else 0
    assert len(_rows(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers))) == 10
    _repack(out, new)
    ds.close()
    with pytest.raises(ShardReadError, match="changed since"):
        list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers))


def test_skip_counts_every_replaced_sample_and_reads_no_new_audio(sets):
    out, new = sets
    ds = ShardDataset(out, batch_size=5, crop_seconds=1.0, shuffle=False, on_error="skip")
    assert all(v for v, _ in _rows(ds).values())
    _repack(out, new)
    ds.close()
    after = _rows(ds)
    assert not any(v or a.any() for v, a in after.values())
    assert ds.stats["skipped"] == 10
    fresh = ShardDataset(out, batch_size=5, crop_seconds=1.0, shuffle=False)
    assert all(v for v, _ in _rows(fresh).values())
