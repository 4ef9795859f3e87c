"""Metadata errors follow on_error: a damaged ``.mp`` member of one sample is a ShardReadError naming
shard and sample ("raise") or a skipped, counted row ("skip"), in the training process and in
DataLoader workers; an index that a reader refuses is refused when the set is opened, by name."""

from __future__ import annotations

import pytest
import torch
from forge import edit_index
from read_fixtures import make_set

from shardkit.dataset import ShardDataset
from shardkit.errors import ShardIndexError, ShardReadError
from shardkit.read import ShardSet


@pytest.fixture
def segs(tmp_path):
    return make_set(tmp_path / "segs", [[160] * 6, [120, 160, 160]])[0]


def _damage_meta(root, i, edit):
    ss = ShardSet.open(root)
    name, off, size, key = ss.shard_names[int(ss.shard_id[i])], int(ss.meta_offset[i]), int(ss.meta_size[i]), ss.keys[i]
    ss.close()
    data = bytearray((root / name).read_bytes())
    data[off: off + size] = edit(bytes(data[off: off + size]))
    (root / name).write_bytes(bytes(data))
    return key, name


GARBAGE = {
    "not msgpack": lambda b: b"\xc1" * len(b),
    "not a map": lambda b: b"\x91\x01" + b"\x00" * (len(b) - 2),
    "cut short": lambda b: b[:1] + b"\xdb" + b"\xff" * (len(b) - 2),
    "list as key": lambda b: (b"\x81\x91\x01\x02" + b"\xc0" * len(b))[: len(b)],
}


@pytest.mark.parametrize("how", list(GARBAGE))
def test_damaged_meta_raises_by_name(segs, how):
    key, name = _damage_meta(segs, 5, GARBAGE[how])
    ds = ShardDataset(segs, batch_size=4, shuffle=False, with_metadata=True)
    with pytest.raises(ShardReadError) as err:
        list(iter(ds))
    assert key in str(err.value) and name in str(err.value)


@pytest.mark.parametrize("how", list(GARBAGE))
def test_damaged_meta_skipped_and_counted(segs, how):
    key, _ = _damage_meta(segs, 5, GARBAGE[how])
    ds = ShardDataset(segs, batch_size=4, shuffle=False, with_metadata=True, on_error="skip")
    batches = list(iter(ds))
    rows = [(k, bool(v), m) for b in batches for k, v, m in zip(b["keys"], b["valid"], b["meta"])]
    assert len(rows) == 9 and ds.stats["skipped"] == 1
    assert [(v, m) for k, v, m in rows if k == key] == [(False, {})]
    assert all(v and m["key"] == k for k, v, m in rows if k != key)
    bad = next(b for b in batches if key in b["keys"])
    assert not bad["audio"][bad["keys"].index(key)].any()


def test_meta_not_read_without_with_metadata(segs):
    _damage_meta(segs, 5, GARBAGE["not msgpack"])
    assert len(list(iter(ShardDataset(segs, batch_size=4, shuffle=False)))) == 3


def test_meta_changed_but_valid_is_caught_by_crc(segs):
    _key, _ = _damage_meta(segs, 1, lambda b: b.replace(b"WAV/PCM_16", b"WAV/PCM_17"))
    plain = ShardDataset(segs, batch_size=9, shuffle=False, with_metadata=True)
    assert next(iter(plain))["meta"][1]["source_format"] == "WAV/PCM_17"  # decodes: unseen without the check
    ds = ShardDataset(segs, batch_size=9, shuffle=False, with_metadata=True, verify_crc=True, on_error="skip")
    b = next(iter(ds))
    assert b["valid"].tolist() == [True] + [False] + [True] * 7 and ds.stats["crc_failed"] == 1
    with pytest.raises(ShardReadError, match=r"\.mp member do not match the CRC-32"):
        next(iter(ShardDataset(segs, batch_size=9, shuffle=False, with_metadata=True, verify_crc=True)))


def test_damaged_meta_in_dataloader_workers(segs):
    key, _ = _damage_meta(segs, 7, GARBAGE["not a map"])
    ds = ShardDataset(segs, batch_size=2, shuffle=False, with_metadata=True, on_error="skip")
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    valid = {k: bool(v) for b in loader for k, v in zip(b["keys"], b["valid"])}
    assert valid.pop(key) is False and all(valid.values()) and len(valid) == 8
    ds = ShardDataset(segs, batch_size=2, shuffle=False, with_metadata=True)
    with pytest.raises(ShardReadError, match=key):
        list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2))


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_bad_index_row_is_refused_at_open_by_name(segs, on_error):
    def edit(idx):
        idx.columns["label"][2] = 99  # outside the vocabulary

    edit_index(segs, 0, edit)
    with pytest.raises(ShardIndexError, match="reindex"):
        ShardDataset(segs, batch_size=4, on_error=on_error)


def test_cat_of_damaged_meta_is_one_line(segs):
    import subprocess
    import sys

    key, _ = _damage_meta(segs, 0, GARBAGE["list as key"])
    out = str(segs.parent / "x.wav")
    res = subprocess.run([sys.executable, "-m", "shardkit_cli", "cat", str(segs), key, "-o", out],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "Traceback" not in res.stderr and key in res.stderr
