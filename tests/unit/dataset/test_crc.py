"""ShardDataset(verify_crc=True): each data member read is checked against its index's CRC-32; a
mismatch is a ShardReadError naming shard and sample, and follows on_error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from read_fixtures import RECORDINGS, make_set

from shardkit.dataset import ShardDataset
from shardkit.errors import ShardReadError, UsageError
from shardkit.read import ShardSet


def _flip(root, i, where="payload", at=0):
    """Flip one byte of sample ``i``'s data member: in its header or ``at`` bytes into its payload."""
    ss = ShardSet.open(root)
    name = ss.shard_names[int(ss.shard_id[i])]
    off = int(ss.wav_offset[i]) + (3 if where == "header" else ss.codec.header_bytes + at)
    key = ss.keys[i]
    ss.close()
    path = root / name
    data = bytearray(path.read_bytes())
    data[off] ^= 0x5A
    path.write_bytes(bytes(data))
    return key, name


def _batches(root, **kw):
    ds = ShardDataset(root, batch_size=4, shuffle=False, **kw)
    return ds, list(iter(ds))


@pytest.fixture
def segs(tmp_path):
    return make_set(tmp_path / "segs", [[160] * 6, [120, 160, 160]])[0]


def test_clean_set_same_batches_and_counts(segs):
    _, plain = _batches(segs)
    ds, checked = _batches(segs, verify_crc=True)
    for a, b in zip(plain, checked):
        assert torch.equal(a["audio"], b["audio"]) and a["keys"] == b["keys"]
    assert ds.stats["crc_checked"] == 9 and ds.stats["crc_failed"] == 0


@pytest.mark.parametrize("where", ["payload", "header"])
def test_mismatch_raises_naming_shard_and_sample(segs, where):
    key, name = _flip(segs, 7, where)
    _batches(segs)  # without the check the damage goes unseen
    with pytest.raises(ShardReadError) as err:
        _batches(segs, verify_crc=True)
    assert key in str(err.value) and name in str(err.value) and "CRC-32" in str(err.value)


def test_mismatch_skipped_and_counted(segs):
    key, _ = _flip(segs, 2, at=100)
    ds, batches = _batches(segs, verify_crc=True, on_error="skip")
    rows = [(k, bool(v)) for b in batches for k, v in zip(b["keys"], b["valid"])]
    assert (key, False) in rows and sum(v for _, v in rows) == 8
    bad = next(b for b in batches if key in b["keys"])
    j = bad["keys"].index(key)
    assert not bad["audio"][j].any() and not bad["labels"][j].any()
    assert ds.stats["skipped"] == 1 and ds.stats["crc_failed"] == 1


def test_cropped_reads_check_the_whole_member_once(tmp_path):
    root = make_set(tmp_path / "rec", [[16000, 4000, 32000]], layout=RECORDINGS)[0]
    ds = ShardDataset(root, batch_size=3, crop_seconds=0.1, shuffle=True, verify_crc=True)
    for epoch in range(3):
        ds.set_epoch(epoch)
        list(iter(ds))
    assert ds.stats["crc_checked"] == 9 and ds.stats["crc_failed"] == 0
    assert ds.reader.crc.state.tolist() == [1, 1, 1]  # the 0.1 s crops of 1 s and 2 s read whole once
    _key, _ = _flip(root, 2, at=2 * 31000)  # near the end: no 0.1 s crop need cover it
    ds = ShardDataset(root, batch_size=3, crop_seconds=0.1, shuffle=True, verify_crc=True, on_error="skip")
    for epoch in range(2):
        ds.set_epoch(epoch)
        list(iter(ds))
    assert ds.stats["skipped"] == 2 and ds.stats["crc_failed"] == 2


def test_verify_crc_must_be_bool(segs):
    with pytest.raises(UsageError, match="verify_crc"):
        ShardDataset(segs, verify_crc="yes")


def test_dataloader_workers_check_too(segs):
    key, _ = _flip(segs, 4)
    ds = ShardDataset(segs, batch_size=3, shuffle=False, verify_crc=True, on_error="skip")
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    valid = {k: bool(v) for b in loader for k, v in zip(b["keys"], b["valid"])}
    assert valid[key] is False and sum(valid.values()) == 8
    assert np.all([isinstance(k, str) for k in valid])
