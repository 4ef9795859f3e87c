"""Device-stage augmentations and DevicePipeline: shapes, identity cases, seeds, SNR, mixup labels, masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from shardkit.device import (
    AddNoise,
    AugmentConfig,
    DevicePipeline,
    LogMel,
    MelConfig,
    Mixup,
    NoiseBank,
    RandomGain,
    RandomShift,
    SpecAugment,
)
from shardkit.device.augment import sample_beta
from shardkit.errors import UsageError

SR = 32000


def _gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _wave(batch: int = 8, samples: int = 4000, seed: int = 1, device: str = "cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (0.1 * torch.randn(batch, samples, generator=g)).to(device)


def _bank(device: str = "cpu", max_seconds: float = 10.0) -> NoiseBank:
    rng = np.random.default_rng(5)
    recs = [rng.standard_normal(n).astype(np.float32) * 0.3 for n in (3000, 9000, 500)]
    return NoiseBank(recs, SR, max_seconds=max_seconds, device=device)


def _wave_ops(bank: NoiseBank) -> list[torch.nn.Module]:
    return [RandomGain(-6, 6, p=1.0), RandomShift(max_frac=0.5, p=1.0), AddNoise(bank, (0, 10), p=1.0)]


# ---------------------------------------------------------------- shape / dtype / identity


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_waveform_ops_preserve_shape_dtype_device(dtype: torch.dtype) -> None:
    x = _wave().to(dtype)
    for op in _wave_ops(_bank()):
        y = op(x, _gen())
        assert y.shape == x.shape and y.dtype == dtype and y.device == x.device, op
        assert not torch.equal(y, x), op
    y, lab = Mixup(p=1.0)(x, torch.eye(8)[:, :5], _gen())
    assert y.shape == x.shape and y.dtype == dtype and lab is not None and lab.shape == (8, 5)
    spec = torch.randn(4, 64, 100, dtype=dtype)
    s = SpecAugment(p=1.0)(spec, _gen())
    assert s.shape == spec.shape and s.dtype == dtype


def test_p0_and_eval_are_identity() -> None:
    x = _wave()
    labels = torch.eye(8)
    spec = torch.randn(8, 32, 50)
    for p in (0.0, 1.0):
        ops = [*_wave_ops(_bank()), SpecAugment(p=1.0)]
        for op in ops:
            op.p = p
            if p == 1.0:
                op.eval()
            inp = spec if isinstance(op, SpecAugment) else x
            assert op(inp, _gen()) is inp
        mix = Mixup(p=p)
        if p == 1.0:
            mix.eval()
        y, lab = mix(x, labels, _gen())
        assert y is x and lab is labels


def test_fixed_seed_reproduces_and_seeds_differ() -> None:
    x = _wave()
    spec = torch.randn(8, 32, 50)
    for op in [*_wave_ops(_bank()), SpecAugment(p=0.7)]:
        inp = spec if isinstance(op, SpecAugment) else x
        a, b, c = op(inp, _gen(3)), op(inp, _gen(3)), op(inp, _gen(4))
        assert torch.equal(a, b), op
        assert not torch.equal(a, c), op
    # a generator held by the module (seed=) gives the same stream as one passed in
    assert torch.equal(RandomGain(p=0.5, seed=9)(x), RandomGain(p=0.5)(x, _gen(9)))
    m = Mixup(p=1.0)
    y1, l1 = m(x, torch.eye(8), _gen(2))
    y2, l2 = m(x, torch.eye(8), _gen(2))
    assert torch.equal(y1, y2) and torch.equal(l1, l2)


def test_probability_picks_a_fraction() -> None:
    op = RandomGain(p=0.3)
    op(torch.ones(4000, 10), _gen())
    assert op.last_applied is not None
    assert abs(op.last_applied.float().mean().item() - 0.3) < 0.04


def test_generator_on_wrong_device_is_refused() -> None:
    op = RandomGain(p=1.0)
    with pytest.raises(UsageError, match="generator"):
        op._generator(torch.zeros(1, device="meta"), _gen())


# ---------------------------------------------------------------- gain / shift


def test_gain_is_in_range_and_exact() -> None:
    x = _wave()
    op = RandomGain(-12, 3, p=1.0)
    y = op(x, _gen())
    db = op.last_gain_db
    assert db is not None and bool((db >= -12).all() and (db <= 3).all())
    torch.testing.assert_close(y, x * 10 ** (db[:, None] / 20))


def test_shift_is_a_roll_per_example() -> None:
    x = _wave(batch=6, samples=100)
    op = RandomShift(max_seconds=20 / SR, sample_rate=SR, p=1.0)
    y = op(x, _gen())
    assert op.last_shift is not None and int(op.last_shift.abs().max()) <= 20
    for i in range(6):
        assert torch.equal(y[i], torch.roll(x[i], int(op.last_shift[i])))
    with pytest.raises(UsageError):
        RandomShift(max_frac=0.1, max_seconds=1.0, sample_rate=SR)


# ---------------------------------------------------------------- noise


def test_noise_bank_bounded_memory_and_crops() -> None:
    bank = NoiseBank([np.ones(SR, np.float32), np.zeros(100, np.float32), 0.5 * np.ones(SR, np.float32)],
                     SR, max_seconds=1.5)
    assert bank.bank.numel() == int(1.5 * SR) and bank.num_recordings == 2   # silent one dropped, last cut
    crops = bank.crop(16, 3 * SR, _gen())                                     # longer than any recording: loops
    assert crops.shape == (16, 3 * SR) and crops.dtype == torch.float32
    assert set(torch.unique(crops).tolist()) <= {0.5, 1.0}
    assert bool((crops == crops[:, :1]).all(dim=1).all())                    # each crop from one recording
    with pytest.raises(UsageError):
        NoiseBank([np.zeros(10)], SR)


def test_noise_bank_from_folder(tmp_path) -> None:
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "a.wav", 0.2 * rng.standard_normal(16000), 16000)      # resampled 16 → 32 kHz
    sf.write(tmp_path / "b.flac", 0.2 * rng.standard_normal((SR, 2)), SR)      # stereo, downmixed
    (tmp_path / "notes.txt").write_text("not audio")
    bank = NoiseBank.from_folder(tmp_path, SR, max_seconds=5.0)
    assert bank.num_recordings == 2 and bank.lengths.tolist() == [SR, SR]
    assert bank.bank.abs().max() < 1.0


@pytest.mark.parametrize("snr_range", [(0.0, 0.0), (-5.0, 20.0)])
def test_add_noise_hits_requested_snr(snr_range: tuple[float, float]) -> None:
    x = _wave(batch=16, samples=SR // 2)
    x[3] *= 0.01                                                                # a quiet clip
    op = AddNoise(_bank(), snr_range, p=1.0)
    y = op(x, _gen())
    added = y - x
    measured = 10 * torch.log10(x.double().pow(2).mean(-1) / added.double().pow(2).mean(-1))
    assert op.last_snr_db is not None
    assert bool((op.last_snr_db >= snr_range[0]).all() and (op.last_snr_db <= snr_range[1]).all())
    assert float((measured - op.last_snr_db.double()).abs().max()) < 0.1


# ---------------------------------------------------------------- mixup


def test_beta_sampler_moments() -> None:
    for alpha in (0.4, 2.0):
        lam = sample_beta(alpha, 20000, _gen(), torch.device("cpu"))
        assert bool(((lam >= 0) & (lam <= 1)).all())
        var = 1 / (4 * (2 * alpha + 1))
        assert abs(lam.mean().item() - 0.5) < 0.02 and abs(lam.var().item() - var) < 0.01


@pytest.mark.parametrize("mode", ["weighted", "max"])
def test_mixup_labels_match_manual_computation(mode: str) -> None:
    x = _wave(batch=8, samples=50)
    g = torch.Generator().manual_seed(7)
    labels = (torch.rand(8, 6, generator=g) < 0.3).to(torch.int64)              # multi-hot, int
    op = Mixup(alpha=0.5, p=0.6, label_mode=mode)
    y, lab = op(x, labels, _gen(1))
    perm, lam, applied = op.last_perm, op.last_lam, op.last_applied
    assert perm is not None and lam is not None and applied is not None and lab is not None
    assert sorted(perm.tolist()) == list(range(8))
    assert bool((lam[~applied] == 1).all())
    for i in range(8):
        j, li = int(perm[i]), float(lam[i])
        torch.testing.assert_close(y[i], li * x[i] + (1 - li) * x[j])
        yi, yj = labels[i].float(), labels[j].float()
        if mode == "weighted":
            expect = li * yi + (1 - li) * yj
        else:
            expect = torch.maximum(yi, yj) if bool(applied[i]) else yi
        torch.testing.assert_close(lab[i], expect)
    assert lab.dtype == torch.float32


# ---------------------------------------------------------------- specaugment


def test_specaugment_mask_widths_are_bounded() -> None:
    spec = torch.randn(64, 40, 120)
    op = SpecAugment(freq_masks=1, freq_width=7, time_masks=1, time_width=15, p=1.0, fill=-100.0)
    out = op(spec, _gen())
    fm, tm = op.last_freq_mask, op.last_time_mask
    assert fm is not None and tm is not None
    fw, tw = fm.sum(1), tm.sum(1)
    assert int(fw.max()) <= 7 and int(tw.max()) <= 15 and int(fw.max()) > 0 and int(tw.max()) > 0
    for m in (fm, tm):                                                          # one mask → one contiguous span
        assert bool((torch.diff(m.int(), dim=1).abs().sum(1) <= 2).all())
    masked = fm[:, :, None] | tm[:, None, :]
    assert bool((out[masked] == -100).all()) and torch.equal(out[~masked], spec[~masked])
    # several masks: the union never exceeds count * width
    op2 = SpecAugment(freq_masks=3, freq_width=5, time_masks=2, time_width=10, p=1.0)
    out2 = op2(spec, _gen())
    assert int(op2.last_freq_mask.sum(1).max()) <= 15 and int(op2.last_time_mask.sum(1).max()) <= 20
    mean = spec.mean(dim=(1, 2))
    b = int(op2.last_freq_mask.sum(1).argmax())
    row = int(op2.last_freq_mask[b].nonzero()[0])
    torch.testing.assert_close(out2[b, row], mean[b].expand(120))


# ---------------------------------------------------------------- pipeline


def _int16_batch(batch: int = 4, seconds: float = 1.0, device: str = "cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    return (torch.randn(batch, int(seconds * SR), generator=g) * 3000).round().to(torch.int16).to(device)


def _full_config() -> AugmentConfig:
    return AugmentConfig(gain_p=0.8, shift_p=0.8, noise_p=0.8, mixup_p=0.8, mixup_label_mode="max", spec_p=0.8)


def test_pipeline_end_to_end_train_and_eval() -> None:
    audio = _int16_batch()
    labels = torch.eye(4, 10)
    mel_cfg = MelConfig(sample_rate=SR, n_mels=64)
    pipe = DevicePipeline(mel_cfg, _full_config(), noise_bank=_bank(), seed=0)
    mel, lab = pipe(audio, labels)
    frames = 1 + SR // mel_cfg.hop_length
    assert mel.shape == (4, 64, frames) and mel.dtype == torch.float32 and torch.isfinite(mel).all()
    assert lab is not None and lab.shape == (4, 10)
    reference = LogMel(mel_cfg)(audio)
    assert not torch.equal(mel, reference)
    pipe.reseed()
    mel2, lab2 = pipe(audio, labels)
    assert torch.equal(mel, mel2) and torch.equal(lab, lab2)                    # same seed, same batch
    pipe.eval()
    mel_e, lab_e = pipe(audio, labels)
    assert torch.equal(mel_e, reference) and lab_e is labels
    assert AugmentConfig.from_dict(_full_config().to_dict()) == _full_config()


def test_pipeline_defaults_are_off_and_validation() -> None:
    audio = _int16_batch(batch=2)
    pipe = DevicePipeline(MelConfig(n_mels=32), seed=1)
    mel, lab = pipe(audio)
    assert lab is None and torch.equal(mel, LogMel(MelConfig(n_mels=32))(audio))
    with pytest.raises(UsageError, match="noise bank"):
        DevicePipeline(augment=AugmentConfig(noise_p=0.5))
    with pytest.raises(UsageError):
        AugmentConfig(mixup_label_mode="sum")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_pipeline_on_cuda() -> None:
    cpu_pipe = DevicePipeline(MelConfig(n_mels=64), _full_config(), noise_bank=_bank(), seed=0)
    pipe = cpu_pipe.to("cuda")
    assert pipe.generator is not None and pipe.generator.device.type == "cuda"
    assert pipe.noise is not None and pipe.noise.bank.bank.device.type == "cuda"
    audio = _int16_batch(device="cuda")
    labels = torch.eye(4, 10, device="cuda")
    mel, lab = pipe(audio, labels)
    assert mel.device.type == "cuda" and mel.shape[:2] == (4, 64) and torch.isfinite(mel).all()
    assert lab is not None and lab.device.type == "cuda"
    pipe.reseed()
    mel2, _ = pipe(audio, labels)
    assert torch.equal(mel, mel2)
    x = audio.float() / 32768
    y = AddNoise(pipe.noise.bank, (5.0, 5.0), p=1.0)(x, _gen(0, "cuda"))
    snr = 10 * torch.log10(x.pow(2).mean(-1) / (y - x).pow(2).mean(-1))
    assert float((snr - 5).abs().max()) < 0.1
    pipe.eval()
    mel_e, _ = pipe(audio, labels)
    assert math.isfinite(float(mel_e.sum()))


@pytest.mark.parametrize("lengths", [(3000, 9000, 500), (50,) * 40])     # looped cache / plain gather
def test_noise_crops_loop_short_recordings_the_same_on_both_paths(lengths: tuple[int, ...]) -> None:
    rng = np.random.default_rng(7)
    bank = NoiseBank([rng.standard_normal(n).astype(np.float32) for n in lengths], SR)
    for length in (10, 700, 5000):
        got = bank.crop(12, length, _gen(4))
        g = _gen(4)
        rec = torch.randint(0, bank.num_recordings, (12,), generator=g)
        lens = bank.lengths[rec]
        off = (torch.rand(12, generator=g) * lens).long().clamp_max(lens - 1)
        pos = (off[:, None] + torch.arange(length)) % lens[:, None]
        assert torch.equal(got, bank.bank[bank.starts[rec][:, None] + pos]), (lengths, length)


def test_shift_of_multichannel_audio_rolls_every_channel_alike() -> None:
    x = torch.randn(5, 3, 400)
    op = RandomShift(max_frac=1.0, p=1.0)
    y = op(x, _gen(2))
    for b, s in enumerate(op.last_shift.tolist()):
        assert torch.equal(y[b], torch.roll(x[b], s, dims=-1))
