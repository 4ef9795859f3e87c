"""Shard sets written by every released format version stay readable (tests/golden/vN/)."""

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import shardkit
from shardkit.format import READABLE_VERSIONS

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
SETS = sorted(p for p in GOLDEN.glob("v*/*") if (p / "manifest.json").exists())


def test_every_readable_version_has_a_fixture():
    assert {int(p.parent.name[1:]) for p in SETS} == set(READABLE_VERSIONS)


@pytest.mark.parametrize("path", SETS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_set_reads(path):
    expected = json.loads((path.parent / "expected.json").read_text())
    assert shardkit.verify(path).ok
    entries = {e.key: e for e in shardkit.list_samples(path)}
    assert set(entries) == set(expected)
    for key, exp in expected.items():
        s = shardkit.read_sample(path, key)
        assert hashlib.sha256(s.wav).hexdigest() == exp["wav_sha256"]
        assert entries[key].frames == exp["frames"] and entries[key].primary_label == exp["label"]
    ds = shardkit.ShardDataset(path, batch_size=len(expected), crop_seconds=0.25, shuffle=False)
    (batch,) = list(ds)
    for row, key in enumerate(batch["keys"]):
        ref, _ = sf.read(io.BytesIO(shardkit.read_sample(path, key).wav), dtype="int16")
        np.testing.assert_array_equal(batch["audio"][row].numpy(), ref[: batch["audio"].shape[1]])
