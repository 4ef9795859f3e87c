"""DevicePipeline's random state in its state_dict: a run resumed mid-epoch from a checkpoint (the
dataset's position and the pipeline's generator) draws the same augmentations as the uninterrupted run —
real packed shards, real DataLoader workers, every augmentation on, the checkpoint through torch.save."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from shardkit import ShardDataset
from shardkit.device import AugmentConfig, DevicePipeline, MelConfig, NoiseBank
from shardkit.errors import UsageError

AUGMENT = AugmentConfig(gain_p=0.5, shift_p=0.5, noise_p=0.5, mixup_p=0.5, spec_p=0.5)


def _pipe(sr: int, seed: int | None = 7) -> DevicePipeline:
    noise = np.random.default_rng(1).normal(0, 0.1, sr).astype(np.float32)
    return DevicePipeline(MelConfig.for_rate(sr), AUGMENT, noise_bank=NoiseBank([noise], sr), seed=seed)


def _ds(packed) -> ShardDataset:
    ds = ShardDataset(packed, batch_size=3, crop_seconds=0.5, seed=2)
    ds.set_epoch(1)
    return ds


def _mels(pipe: DevicePipeline, batches) -> list[torch.Tensor]:
    out = []
    for batch in batches:
        mel, labels = pipe(batch["audio"], batch["labels"])
        out.append(torch.cat([mel.flatten(1), labels], dim=1))
    return out


def test_resume_with_augmentations_equals_the_uninterrupted_run(packed, tmp_path):
    ds = _ds(packed)
    sr = ds.shard_set.sample_rate
    whole = _mels(_pipe(sr), DataLoader(ds, batch_size=None, num_workers=2))
    assert len(whole) >= 4
    done = 2
    first, pipe = _ds(packed), _pipe(sr)
    loader = iter(DataLoader(first, batch_size=None, num_workers=2))
    head = _mels(pipe, [next(loader) for _ in range(done)])
    torch.save({"data": first.state_dict(done), "pipe": pipe.state_dict()}, tmp_path / "ckpt.pt")
    del loader

    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    resumed, pipe = _ds(packed), _pipe(sr)
    resumed.load_state_dict(ckpt["data"])
    pipe.load_state_dict(ckpt["pipe"])
    tail = _mels(pipe, DataLoader(resumed, batch_size=None, num_workers=2))
    assert len(head) + len(tail) == len(whole)
    for a, b in zip(whole, head + tail):
        assert torch.equal(a, b)
    fresh = _ds(packed)  # the dataset alone is not enough: a fresh generator draws other augmentations
    fresh.load_state_dict(ckpt["data"])
    other = _mels(_pipe(sr), DataLoader(fresh, batch_size=None, num_workers=0))
    assert not all(torch.equal(a, b) for a, b in zip(whole[done:], other))


def test_state_of_seeded_and_unseeded_pipelines(packed):
    sr = _ds(packed).shard_set.sample_rate
    seeded = _pipe(sr, seed=3)
    audio = torch.randint(-3000, 3000, (4, sr // 2), dtype=torch.int16)
    seeded(audio)
    state = seeded.state_dict()
    expected, _ = seeded(audio)
    unseeded = _pipe(sr, seed=None)  # a seeded state makes an unseeded pipeline seeded, at that point
    unseeded.load_state_dict(state)
    assert unseeded.seed == 3 and torch.equal(unseeded(audio)[0], expected)
    assert _pipe(sr, seed=None).state_dict()["_extra_state"]["generator"] is None
    blank = _pipe(sr, seed=9)
    blank.load_state_dict(_pipe(sr, seed=None).state_dict())  # unseeded state: torch's default generator
    assert blank.seed is None and blank.generator is None
    seeded.reseed(3)
    assert torch.equal(seeded(audio)[0], _pipe(sr, seed=3)(audio)[0])


def test_a_forged_pipeline_state_is_a_usage_error(packed):
    sr = _ds(packed).shard_set.sample_rate
    state = _pipe(sr).state_dict()
    for extra in ({"format": 99}, {"generator": "abc"}, {"seed": "x"}, {"device": 5}, "nonsense",
                  {**state["_extra_state"], "generator": torch.zeros(3, dtype=torch.uint8)}):
        with pytest.raises(UsageError, match="DevicePipeline"):
            _pipe(sr).load_state_dict({**state, "_extra_state": extra})


def test_a_cuda_state_loaded_on_cpu_waits_for_the_device(packed):
    """A state saved on CUDA (a Philox seed and offset, 16 bytes) cannot drive a CPU generator: loaded into
    a CPU pipeline it is kept, and saved again unchanged, until the pipeline is on CUDA."""
    sr = _ds(packed).shard_set.sample_rate
    cuda_state = {"format": 1, "seed": 3, "device": "cuda", "generator": torch.arange(16, dtype=torch.uint8)}
    pipe = _pipe(sr, seed=9)
    pipe.load_state_dict({**pipe.state_dict(), "_extra_state": cuda_state})
    assert pipe.seed == 3 and pipe.generator.device.type == "cpu"
    kept = pipe.state_dict()["_extra_state"]
    assert kept["device"] == "cuda" and torch.equal(kept["generator"], cuda_state["generator"])
    audio = torch.randint(-3000, 3000, (4, sr // 2), dtype=torch.int16)
    assert torch.equal(pipe(audio)[0], _pipe(sr, seed=3)(audio)[0])  # on CPU: the seed's stream
