"""DevicePipeline on uint8 log-mel batches (mel-u8 shard sets): dequantise, then dB-domain augmentations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shardkit.device import AugmentConfig, DevicePipeline, LogMel, MelConfig, Mixup, NoiseBank, RandomGain, dequantize
from shardkit.encode import mel_u8
from shardkit.errors import UsageError

SR = 32000
CFG = MelConfig(sample_rate=SR, n_mels=64)


def _audio(batch: int = 6, seconds: float = 1.0, seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    tones = torch.stack([torch.sin(2 * torch.pi * (500 + 400 * i) * t) for i in range(batch)])
    x = 0.3 * tones + 0.02 * torch.randn(batch, t.numel(), generator=g)
    return (x * 32767).round().to(torch.int16)


def _quantised(audio: torch.Tensor, cfg: MelConfig = CFG) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(float dB (B, n_mels, F), uint8 (B, n_mels, F), ranges (B, 2)) as pack would store them."""
    db = LogMel(cfg)(audio)
    qs, ranges = zip(*[(q, (lo, hi)) for q, lo, hi in (mel_u8.quantize(r) for r in db.numpy())])
    return db, torch.from_numpy(np.stack(qs)), torch.tensor(ranges, dtype=torch.float32)


def test_eval_is_the_dequantised_log_mel_and_normalisation_applies() -> None:
    db, q, rng = _quantised(_audio())
    out, labels = DevicePipeline(CFG).eval()(q, mel_range=rng)
    assert labels is None and torch.equal(out, dequantize(q, rng))
    assert float((out - db).abs().max()) <= 80 / 510 + 1e-4
    norm = MelConfig(sample_rate=SR, n_mels=64, normalize="per_example")
    out_n, _ = DevicePipeline(norm).eval()(q, mel_range=rng)
    assert torch.allclose(out_n.mean(dim=(1, 2)), torch.zeros(6), atol=1e-4)


def test_gain_in_db_equals_gain_on_the_waveform() -> None:
    audio = _audio()
    gain = RandomGain(-6.0, 6.0, p=1.0)
    x = audio.float() / 32768
    g = torch.Generator().manual_seed(0)
    louder = gain(x, g)
    db_gain = gain.last_gain_db
    ref = LogMel(CFG)(louder)
    shifted = LogMel(CFG)(x) + db_gain[:, None, None]
    assert float((ref - shifted).abs().max()) < 1e-3
    g = torch.Generator().manual_seed(0)
    assert torch.allclose(gain(LogMel(CFG)(x), g, log_db=True), shifted)


def test_power_domain_mixup() -> None:
    db = torch.randn(5, 8, 20) * 10 - 30
    labels = torch.eye(5)
    mix = Mixup(alpha=0.4, p=1.0)
    out, lab = mix(db, labels, torch.Generator().manual_seed(1), log_db=True)
    lam, perm = mix.last_lam, mix.last_perm
    lx = lam[:, None, None]
    expect = 10 * torch.log10(lx**2 * 10 ** (db / 10) + (1 - lx) ** 2 * 10 ** (db[perm] / 10))
    assert torch.allclose(out, expect, atol=1e-4)
    assert torch.allclose(lab, lam[:, None] * labels + (1 - lam[:, None]) * labels[perm])
    # mixing a clip with itself at lam only changes its level, by 10·log10(lam² + (1-lam)²)
    same = db[:1].expand(5, -1, -1)
    out, _ = mix(same, None, torch.Generator().manual_seed(2), log_db=True)
    lam = mix.last_lam
    assert torch.allclose(out - same, 10 * torch.log10(lam**2 + (1 - lam) ** 2)[:, None, None], atol=1e-4)


def test_training_is_seeded_and_augments() -> None:
    _, q, rng = _quantised(_audio())
    labels = torch.eye(6, 4)
    cfg = AugmentConfig(gain_p=0.8, shift_p=0.8, mixup_p=0.8, spec_p=0.8)
    pipe = DevicePipeline(CFG, cfg, seed=7)
    a, la = pipe(q, labels, mel_range=rng)
    pipe.reseed()
    b, lb = pipe(q, labels, mel_range=rng)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert a.shape == q.shape and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert not torch.equal(a, dequantize(q, rng))


def test_refusals_name_the_fix() -> None:
    _, q, rng = _quantised(_audio(batch=2))
    with pytest.raises(UsageError, match="mel_range"):
        DevicePipeline(CFG)(q)
    with pytest.raises(UsageError, match="from_dict"):
        DevicePipeline(MelConfig(sample_rate=SR, n_mels=128))(q, mel_range=rng)
    with pytest.raises(UsageError, match="audio"):
        DevicePipeline(CFG)(_audio(batch=2), mel_range=rng)
    bank = NoiseBank([np.ones(4000, np.float32) * 0.1], SR)
    pipe = DevicePipeline(CFG, AugmentConfig(noise_p=0.5), noise_bank=bank)
    with pytest.raises(UsageError, match="noise"):
        pipe(q, mel_range=rng)
    out, _ = pipe.eval()(q, mel_range=rng)  # validation needs no noise: fine
    assert out.shape == q.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_mel_u8_on_cuda_matches_cpu() -> None:
    _, q, rng = _quantised(_audio())
    cpu, _ = DevicePipeline(CFG).eval()(q, mel_range=rng)
    gpu, _ = DevicePipeline(CFG).to("cuda").eval()(q.cuda(non_blocking=True), mel_range=rng.cuda())
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-5)
    pipe = DevicePipeline(CFG, AugmentConfig(gain_p=1, shift_p=1, mixup_p=1, spec_p=1), seed=0).to("cuda")
    out, lab = pipe(q.cuda(), torch.eye(6, 4, device="cuda"), mel_range=rng.cuda())
    assert out.device.type == "cuda" and torch.isfinite(out).all() and lab.device.type == "cuda"
