"""ShardSetWriter: audio from Python in, a shard set out — the same bytes as pack for the same samples."""

from __future__ import annotations

import numpy as np
import pytest

import shardkit
from shardkit import PackOptions, ShardDataset, ShardSet, ShardSetWriter
from shardkit.errors import OutputConflictError, UsageError


def _rewrite(src: ShardSet, out, codec: str = "wav16", **kwargs) -> None:
    """Write every sample of ``src`` again, in order, through a ShardSetWriter."""
    manifest = src.manifest
    with ShardSetWriter(out, sample_rate=src.sample_rate, channels=src.channels, codec=codec,
                        shard_size=manifest.pack["shard_size"], vocabulary=src.vocabulary,
                        layout=manifest.layout, **kwargs) as w:
        for i, key in enumerate(src.keys):
            meta = src.read_meta(i)
            assert w.write(src.read_frames(i), key=key, primary_label=meta["primary_label"],
                           secondary_labels=meta["secondary_labels"], source=meta["source"],
                           start=meta["start_frame"], extra=meta["extra"], meta=meta)


def _shard_bytes(path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.glob("shard-*"))}


def test_same_samples_same_order_give_the_same_bytes_as_pack(corpus, tmp_path):
    packed = tmp_path / "packed"
    shardkit.pack(corpus[0], packed, metadata=corpus[1], options=PackOptions(shard_size="300KB"))
    with ShardSet.open(packed) as src:
        _rewrite(src, tmp_path / "written")
    assert _shard_bytes(tmp_path / "written") == _shard_bytes(packed)
    assert len(_shard_bytes(packed)) > 2  # several shards: rolling at shard_size is the same too


def test_mel_u8_written_from_audio_equals_a_mel_u8_pack(corpus, tmp_path):
    opts = {"sample_rate": 16000, "shard_size": "200KB", "max_seconds": 4.0}
    shardkit.pack(corpus[0], tmp_path / "wav", metadata=corpus[1], options=PackOptions(**opts))
    mel = shardkit.MelConfig.for_rate(16000, n_mels=32, n_fft=512, hop_length=256)
    shardkit.pack(corpus[0], tmp_path / "mel", metadata=corpus[1],
                  options=PackOptions(**opts, codec="mel-u8", mel=mel))
    with ShardSet.open(tmp_path / "wav") as src:
        _rewrite(src, tmp_path / "written", codec="mel-u8", mel=mel)
    assert _shard_bytes(tmp_path / "written") == _shard_bytes(tmp_path / "mel")


def test_a_written_set_streams(tmp_path):
    rng = np.random.default_rng(0)
    clips = {f"clip-{n:03d}": (rng.integers(-3000, 3000, 8000 + 100 * n).astype(np.int16), ["a", "b"][n % 2])
             for n in range(10)}
    with ShardSetWriter(tmp_path / "set", sample_rate=16000, shard_size="64KB", vocabulary=["a", "b"]) as w:
        for key, (audio, label) in clips.items():
            w.write(audio, key=key, primary_label=label, extra={"n": key})
    assert shardkit.verify(tmp_path / "set").ok
    ds = ShardDataset(tmp_path / "set", batch_size=4, shuffle=False)
    seen = {}
    for batch in ds:
        for row, key in enumerate(batch["keys"]):
            if batch["valid"][row]:
                seen[key] = batch["audio"][row].numpy()
    assert set(seen) == set(clips)
    for key, (audio, _) in clips.items():
        np.testing.assert_array_equal(seen[key][: len(audio)], audio)
    assert shardkit.info(tmp_path / "set").label_counts == {"a": 5, "b": 5}


def test_budget_stops_cleanly_and_the_set_is_incomplete(tmp_path):
    audio = np.zeros(16000, np.int16)
    with ShardSetWriter(tmp_path / "set", sample_rate=16000, shard_size="64KB", budget="100KB") as w:
        written = [w.write(audio, key=f"k{n}") for n in range(10)]
    assert written[:2] == [True, True] and written[-1] is False and False in written
    info = shardkit.info(tmp_path / "set")
    assert not info.complete and info.samples == written.index(False)
    assert info.bytes <= 100_000


@pytest.mark.parametrize("call, match", [
    (lambda w: w.write(np.zeros(10, np.float32), key="a"), "int16"),
    (lambda w: w.write(np.zeros((10, 2), np.int16), key="a"), "shape"),
    (lambda w: w.write(np.zeros(10, np.int16), key="a.wav"), "no dots"),
    (lambda w: w.write(np.zeros(10, np.int16), key="a", primary_label="zebra"), "not in the vocabulary"),
    (lambda w: [w.write(np.zeros(10, np.int16), key="a") for _ in range(2)], "twice"),
])
def test_bad_samples_are_refused_with_the_key(tmp_path, call, match):
    w = ShardSetWriter(tmp_path / "set", sample_rate=16000, vocabulary=["amecro"])
    with pytest.raises(UsageError, match=match):
        call(w)
    w.abort()


def test_an_error_inside_the_block_leaves_no_manifest_and_no_temp_file(tmp_path):
    with pytest.raises(RuntimeError), ShardSetWriter(tmp_path / "set", sample_rate=16000) as w:
        w.write(np.zeros(100, np.int16), key="a")
        raise RuntimeError("user code failed")
    assert not (tmp_path / "set" / "manifest.json").exists()
    assert not list((tmp_path / "set").glob("*.tmp"))


def test_an_existing_set_is_not_replaced_without_overwrite(tmp_path):
    for _ in range(2):
        with ShardSetWriter(tmp_path / "set", sample_rate=16000, overwrite=_ == 1) as w:
            w.write(np.zeros(100, np.int16), key="a")
    with pytest.raises(OutputConflictError, match="overwrite"):
        ShardSetWriter(tmp_path / "set", sample_rate=16000)
