"""LocalStorage reads only regular files inside the set, caps whole-object reads, and notices a shard
replaced under a running reader (docs/reliability.md)."""

import os
import pickle
import shutil

import numpy as np
import pytest

from shardkit import ShardSet, ShardSetWriter
from shardkit.errors import ShardReadError, UnsafeFileError
from shardkit.storage import base as storage_base
from shardkit.storage.base import ShardChanged
from shardkit.storage.local import LocalStorage


@pytest.fixture()
def small_set(tmp_path):
    with ShardSetWriter(tmp_path / "set", sample_rate=16000) as w:
        for k in range(3):
            w.write(np.full(1600, k, np.int16), key=f"k{k}")
    return tmp_path / "set"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", ["manifest.json", "shard-00000.index", "shard-00000.tar"])
def test_a_fifo_is_refused_without_hanging(small_set, name):
    (small_set / name).unlink()
    os.mkfifo(small_set / name)
    with pytest.raises(UnsafeFileError, match="FIFO"):
        ShardSet.open(small_set)
    with pytest.raises(UnsafeFileError, match="FIFO"):
        LocalStorage(small_set).read_bytes(name)


@pytest.mark.parametrize("target", ["/dev/zero", "/etc/hostname", "../elsewhere.tar"])
@pytest.mark.parametrize("name", ["shard-00000.index", "shard-00000.tar"])
def test_a_symlink_out_of_the_set_is_refused(small_set, name, target):
    (small_set.parent / "elsewhere.tar").write_bytes((small_set / name).read_bytes())
    (small_set / name).unlink()
    os.symlink(target, small_set / name)
    with pytest.raises(UnsafeFileError, match="outside the shard set"):
        ShardSet.open(small_set)
    errors = LocalStorage(small_set).read_into(name, [(0, 4, memoryview(bytearray(4)))])
    assert "outside the shard set" in str(errors[0][1])


def test_a_symlink_inside_the_set_is_followed(small_set):
    os.rename(small_set / "shard-00000.tar", small_set / "real.tar")
    os.symlink("real.tar", small_set / "shard-00000.tar")
    s = ShardSet.open(small_set)
    assert s.read_frames(2)[0] == 2


def test_a_device_is_refused(small_set):
    with pytest.raises(UnsafeFileError, match="character device"):
        LocalStorage("/dev").read_bytes("zero")
    with pytest.raises(UnsafeFileError, match="folder"):
        LocalStorage(small_set.parent).size("set")


def test_read_bytes_is_capped_before_reading(small_set, monkeypatch):
    monkeypatch.setattr(storage_base, "MAX_OBJECT_BYTES", 100)
    with pytest.raises(UnsafeFileError, match="more than the 100"):
        ShardSet.open(small_set)


def _replace_shard(root):
    """Re-pack under the same layout: same size, other audio, a new inode (temp + rename)."""
    data = bytearray((root / "shard-00000.tar").read_bytes())
    data[1100] ^= 0xFF
    (root / "new.tmp").write_bytes(bytes(data))
    os.replace(root / "new.tmp", root / "shard-00000.tar")


def test_a_shard_replaced_after_a_close_is_detected_at_reopen(small_set):
    s = ShardSet.open(small_set)
    s.read_frames(0)
    s.close()  # as the LRU cap does
    _replace_shard(small_set)
    with pytest.raises(ShardReadError, match=r"changed since the set was opened.*replaced"):
        s.read_frames(0)


def test_a_shard_replaced_before_a_worker_opens_it_is_detected(small_set):
    s = ShardSet.open(small_set)
    _replace_shard(small_set)
    worker = pickle.loads(pickle.dumps(s))  # a DataLoader worker of the next epoch
    with pytest.raises(ShardReadError, match="changed since the set was opened"):
        worker.read_frames(1)


def test_a_shard_rewritten_in_place_under_an_open_descriptor_is_detected(small_set):
    s = ShardSet.open(small_set)
    s.read_frames(0)
    with open(small_set / "shard-00000.tar", "r+b") as fh:
        fh.truncate(2048)
    with pytest.raises(ShardReadError, match=r"changed since the set was opened.*2048"):
        s.read_frames(0)


def test_an_unchanged_shard_reopens_fine(small_set, tmp_path):
    s = ShardSet.open(small_set, storage=LocalStorage(small_set, max_open=1))
    for _ in range(3):
        assert s.read_frames(1)[0] == 1
        s.close()
    copy = tmp_path / "copy"
    shutil.copytree(small_set, copy)  # another set: its own identities
    assert ShardSet.open(copy).read_frames(2)[0] == 2
    assert isinstance(ShardChanged("x", "y"), OSError)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_ls_info_and_plan_read_metadata_the_same_way(small_set, kind):
    import shardkit

    for name in ("shard-00000.index", "manifest.json"):
        (small_set / name).rename(small_set / f"{name}.bak")
        os.mkfifo(small_set / name) if kind == "fifo" else os.symlink(kind, small_set / name)
        with pytest.raises(UnsafeFileError):
            list(shardkit.list_samples(small_set))
        if name == "manifest.json":
            for call in (shardkit.info, lambda p: shardkit.plan_split(p, world_size=1)):
                with pytest.raises(UnsafeFileError):
                    call(small_set)
        (small_set / name).unlink()
        (small_set / f"{name}.bak").rename(small_set / name)
