"""DevicePipeline.for_shard_set: the front end follows the set's codec (wav16 → log-mel of int16 audio,
mel-u8 → dequantise), and pipe.batch(batch) reads the codec's batch entries, so training code never
branches on the codec."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from read_fixtures import make_set

from shardkit.dataset import ShardDataset
from shardkit.device import AugmentConfig, DevicePipeline, LogMel, MelConfig, dequantize
from shardkit.encode import MelU8, Wav16, mel_u8
from shardkit.errors import UsageError
from shardkit.read import ShardSet

SR = 16000
MEL = MelConfig.for_rate(SR, n_mels=32, hop_length=160)


def _audio(b: int = 3, n: int = 8000) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).integers(-8000, 8000, size=(b, n)).astype(np.int16))


def _mel_batch(b: int = 3) -> dict[str, Any]:
    db = LogMel(MEL)(_audio(b)).numpy()
    qs, ranges = zip(*[(q, (lo, hi)) for q, lo, hi in map(mel_u8.quantize, db)])
    return {"mel": torch.from_numpy(np.stack(qs)), "mel_range": torch.tensor(ranges, dtype=torch.float32),
            "labels": torch.eye(b, 4), "valid": torch.ones(b, dtype=torch.bool)}


def test_wav16_gets_a_log_mel_front_end_at_the_set_rate(tmp_path):
    root, _ = make_set(tmp_path / "s", [[4000, 6000], [5000]], sample_rate=SR)
    ds = ShardDataset(root, batch_size=3, shuffle=False)
    for shards in (ds, ds.shard_set, ds.shard_set.codec):
        pipe = DevicePipeline.for_shard_set(shards, seed=0)
        assert pipe.mel_config == MelConfig.for_rate(SR) and pipe.batch_key == "audio" and pipe.batch_fields == ()
    pipe = DevicePipeline.for_shard_set(ds, mel=MEL).eval()
    batch = next(iter(ds))
    mel, labels = pipe.batch(batch)
    ref, _ = pipe(batch["audio"], batch["labels"])
    assert torch.equal(mel, ref) and torch.equal(labels, batch["labels"]) and mel.shape[1] == 32
    with pytest.raises(UsageError, match="for_rate"):
        DevicePipeline.for_shard_set(ds, mel=MelConfig(sample_rate=32000))


def test_mel_u8_gets_the_stored_front_end_and_dequantises():
    codec = MelU8(SR, MEL)
    pipe = DevicePipeline.for_shard_set(codec, AugmentConfig(gain_p=1.0), seed=1).eval()
    assert pipe.mel_config == MEL and pipe.batch_key == "mel" and pipe.batch_fields == ("mel_range",)
    batch = _mel_batch()
    out, labels = pipe.batch(batch)
    assert torch.equal(out, dequantize(batch["mel"], batch["mel_range"])) and torch.equal(labels, batch["labels"])
    norm = DevicePipeline.for_shard_set(codec, mel=dataclasses.replace(MEL, normalize="per_example")).eval()
    out, _ = norm.batch(batch)
    assert torch.allclose(out.mean(dim=(1, 2)), torch.zeros(3), atol=1e-4)
    with pytest.raises(UsageError, match="normalize"):
        DevicePipeline.for_shard_set(codec, mel=dataclasses.replace(MEL, n_mels=64))
    with pytest.raises(UsageError, match="mel_range"):  # the codec picked the path, not the dtype
        pipe(batch["mel"])
    with pytest.raises(UsageError, match="for_shard_set"):  # a wav16 pipeline handed a mel-u8 batch
        DevicePipeline.for_shard_set(Wav16(SR)).batch(batch)


def test_training_through_batch_is_seeded():
    pipe = DevicePipeline.for_shard_set(MelU8(SR, MEL), AugmentConfig(gain_p=0.8, shift_p=0.8, mixup_p=0.8,
                                                                      spec_p=0.8), seed=7)
    batch = _mel_batch()
    a, la = pipe.batch(batch)
    pipe.reseed()
    b, lb = pipe.batch(batch)
    assert torch.equal(a, b) and torch.equal(la, lb) and not torch.equal(a, dequantize(batch["mel"],
                                                                                       batch["mel_range"]))


@dataclasses.dataclass(frozen=True)
class _MelNoRange(MelU8):
    codec_id: ClassVar[str] = "mel-no-range"

    def batch_field_specs(self) -> dict[str, tuple[tuple[int, ...], type]]:
        return {}


def test_refusals_name_the_fix(tmp_path):
    with pytest.raises(UsageError, match="no front end"):
        DevicePipeline.for_shard_set(_MelNoRange(SR, MEL))
    with pytest.raises(UsageError, match="ShardSet, a ShardDataset or a Codec"):
        DevicePipeline.for_shard_set("shards/")
    with pytest.raises(UsageError, match="for_shard_set"):
        DevicePipeline(MEL).batch({"audio": _audio()})
    with pytest.raises(UsageError, match="MelConfig"):
        DevicePipeline.for_shard_set(Wav16(SR), mel={"n_mels": 32})
    root, _ = make_set(tmp_path / "s", [[4000]], sample_rate=SR)
    with ShardSet.open(root) as ss:
        assert DevicePipeline.for_shard_set(ss).batch_key == "audio"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_batch_moves_to_the_pipeline_device():
    pipe = DevicePipeline.for_shard_set(MelU8(SR, MEL)).to("cuda").eval()
    out, labels = pipe.batch(_mel_batch())
    assert out.device.type == "cuda" and labels.device.type == "cuda"
