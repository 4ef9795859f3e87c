"""The label-layer rows of ``benchmarks.run``: :func:`benchmarks.labels.add_bench_layers` on sets whose
recordings were cut into several samples (longer than the pack's ``max_seconds``), as the full corpus's are."""

from __future__ import annotations

from audio_factory import make_file

import shardkit
from benchmarks.labels import LAYER, add_bench_layers


def test_layers_of_recordings_cut_into_several_samples(tmp_path, monkeypatch):
    for i, seconds in enumerate((23.0, 7.5, 12.0)):
        make_file(tmp_path / "audio" / f"r{i}.ogg", seconds, 32000, 1, seed=i)
    rec, seg = tmp_path / "rec", tmp_path / "seg"
    shardkit.pack(tmp_path / "audio", rec, options=shardkit.PackOptions(mode="recordings", max_seconds=10.0))
    shardkit.pack(tmp_path / "audio", seg, options=shardkit.PackOptions(mode="segments", segment_seconds=5.0))
    with shardkit.ShardSet.open(rec) as ss:
        assert len(ss.keys) > len(set(ss.source_id.tolist()))  # some source is several samples
    made = add_bench_layers(seg, rec, tmp_path / "layered")
    monkeypatch.setenv("SHARDKIT_SEARCH_PATH", str(tmp_path))
    for name in ("segments", "recordings"):
        assert [layer.name for layer in shardkit.list_labels(made[name])] == [LAYER]
