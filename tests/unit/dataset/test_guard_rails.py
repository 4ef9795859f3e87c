"""Issue 22 item 22: a notebook user's slips get a word instead of silence or a raw error — a DataLoader
that batches the dataset's batches, several sets passed where one goes, a crop longer than every sample,
training on a set whose pack stopped at its budget; and a skip warning does not advise turning skip on."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings

import pytest
from read_fixtures import make_set
from torch.utils.data import DataLoader

import shardkit
from shardkit.dataset import ShardDataset, dataset
from shardkit.errors import UsageError


@pytest.fixture(scope="module")
def segments(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard")
    path, _ = make_set(root / "seg", [[1600] * 6, [1600] * 6], layout={"mode": "segments", "segment_seconds": 0.1})
    return path


@pytest.mark.parametrize("workers", [0, 2])
def test_a_dataloader_that_batches_the_batches_warns_once(segments, workers):
    ds = ShardDataset(segments, batch_size=4, shuffle=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        got = list(DataLoader(ds, batch_size=2, num_workers=workers))
    assert len(got) == 2  # torch's behaviour stays: 3 batches of 4, taken 2 at a time
    if workers == 0:
        assert [str(w.message) for w in seen if "batch_size=None" in str(w.message)] != []
        assert sum("batch_size=None" in str(w.message) for w in seen) == 1
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        list(DataLoader(ds, batch_size=None, num_workers=0))
    assert not any("batch_size=None" in str(w.message) for w in seen)


def test_a_dataloader_in_workers_warns_in_the_worker(segments):
    script = ("import sys; from torch.utils.data import DataLoader; from shardkit import ShardDataset\n"
              "ds = ShardDataset(sys.argv[1], batch_size=4, shuffle=False)\n"
              "print(len(list(DataLoader(ds, batch_size=2, num_workers=1))))\n")
    p = subprocess.run([sys.executable, "-c", script, str(segments)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.strip() == "2", p.stderr
    assert p.stderr.count("batch_size=None") == 1, p.stderr


@pytest.mark.parametrize("source", [["a", "b"], ("a", "b"), "a,b", 42])
def test_several_sets_or_no_set_is_a_usage_error(source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with pytest.raises(UsageError, match="one shard set") as err:
        ShardDataset(source, batch_size=2)
    assert "shardkit.Mixture" in str(err.value)


def test_a_crop_longer_than_every_sample_warns_once(segments, caplog):
    with caplog.at_level(logging.WARNING, logger=dataset.log.name):
        ds = ShardDataset(segments, batch_size=4, crop_seconds=0.5)
        list(ds)
        list(ds)
    padded = [r for r in caplog.records if "longer than" in r.getMessage()]
    assert len(padded) == 1 and "0.1" in padded[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=dataset.log.name):
        ShardDataset(segments, batch_size=4, crop_seconds=0.05)
    assert not any("longer than" in r.getMessage() for r in caplog.records)


def test_training_on_an_incomplete_set_warns(corpus, tmp_path, caplog):
    out = tmp_path / "cut"
    r = shardkit.pack(corpus[0], out, metadata=corpus[1], budget="600KB",
                      options=shardkit.PackOptions(shard_size="300KB"))
    assert not r.complete
    with caplog.at_level(logging.WARNING, logger=dataset.log.name):
        ShardDataset(out, batch_size=2, crop_seconds=0.5)
    assert any("incomplete" in r.getMessage() and "--budget" in r.getMessage() for r in caplog.records)


def test_the_skip_warning_does_not_advise_skip(segments, tmp_path, caplog):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(segments, broken)
    shard = sorted(broken.glob("*.tar"))[-1]
    raw = bytearray(shard.read_bytes())
    raw[2000] ^= 0xFF  # inside the first sample's audio: its CRC-32 fails
    shard.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING):
        list(ShardDataset(broken, batch_size=4, shuffle=False, on_error="skip", verify_crc=True))
    skips = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert skips and not any("pass on_error='skip'" in m for m in skips), skips
    with pytest.raises(shardkit.ShardReadError, match="pass on_error='skip'"):
        list(ShardDataset(broken, batch_size=4, shuffle=False, verify_crc=True))
