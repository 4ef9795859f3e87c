"""ReadOptions: every argument check of ShardDataset, done once in __post_init__."""

import dataclasses

import pytest

from shardkit.dataset.options import ReadOptions
from shardkit.errors import UsageError


def test_defaults_are_normalised():
    o = ReadOptions()
    assert o.partial == "pad" and o.window_bytes == 256_000_000 and o.read_threads is None
    assert ReadOptions(shuffle=False).partial == "keep"
    assert ReadOptions(classes=["x", "y"]).classes == ("x", "y")
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.batch_size = 3


@pytest.mark.parametrize("kw, match", [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": True}, "batch_size"),
    ({"on_error": "ignore"}, "on_error"), ({"read_threads": 0}, "read_threads"),
    ({"read_threads": False}, "read_threads"), ({"partial": "wrap"}, "partial"),
    ({"crops_per_recording": 0}, "crops_per_recording"), ({"shuffle_window": "lots"}, "shuffle_window"),
    # issue 22 item 12: no raw ValueError, nothing absurd accepted
    ({"crop_seconds": float("nan")}, "crop_seconds"), ({"crop_seconds": float("inf")}, "crop_seconds"),
    ({"crop_seconds": -1.0}, "crop_seconds"), ({"crop_seconds": "5"}, "crop_seconds"),
    ({"seed": "abc"}, "seed"), ({"seed": 1.5}, "seed"), ({"seed": None}, "seed"),
    ({"secondary_weight": float("nan")}, "secondary_weight"), ({"secondary_weight": -0.5}, "secondary_weight"),
    ({"secondary_weight": "x"}, "secondary_weight"), ({"crops_per_recording": "two"}, "crops_per_recording"),
    ({"batch_size": "8"}, "batch_size"), ({"batch_size": 2.5}, "batch_size"),
])
def test_bad_values_are_usage_errors(kw, match):
    with pytest.raises(UsageError, match=match):
        ReadOptions(**kw)


def test_layout_checks():
    with pytest.raises(UsageError, match="crop_seconds"):
        ReadOptions().check_layout("recordings", "/set")
    with pytest.raises(UsageError, match="crops_per_recording must be 1"):
        ReadOptions(crops_per_recording=2).check_layout("segments", "/set")
    ReadOptions(crop_seconds=1.0, crops_per_recording=2).check_layout("recordings", "/set")
