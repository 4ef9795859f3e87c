"""LogMel: the same numbers as torchaudio, int16 scaling, shapes, downmix, normalisation, devices."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torchaudio

from shardkit.device import LogMel, MelConfig
from shardkit.errors import UsageError

SR = 32000


def _clips(batch: int = 3, samples: int = SR, *, seed: int = 0) -> torch.Tensor:
    """float32 (batch, samples): a chirp-like tone plus noise, a different loudness per clip."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples, dtype=torch.float64) / SR
    rows = []
    for i in range(batch):
        tone = torch.sin(2 * math.pi * (1000 + 700 * i) * t + 40 * torch.sin(2 * math.pi * 3 * t))
        noise = 0.01 * torch.randn(samples, generator=g, dtype=torch.float64)
        rows.append((0.8 / 10**i) * tone + noise)
    return torch.stack(rows).to(torch.float32)


def _torchaudio_reference(x: torch.Tensor, c: MelConfig) -> torch.Tensor:
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=c.sample_rate, n_fft=c.n_fft, win_length=c.win_length, hop_length=c.hop_length,
        f_min=c.f_min, f_max=c.f_max, n_mels=c.n_mels, power=c.power,
    )
    to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=c.top_db)
    # one clip at a time: torchaudio's top_db floor is then that clip's own peak - top_db
    return torch.cat([to_db(mel(clip[None])) for clip in x])


def _same_numbers(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal up to float32 rounding (dB values): a batched FFT and one clip at a time may round differently
    (MKL on an Intel host and torch 2.11 did, by ~1e-5 dB); a wrong top_db floor is off by whole dB."""
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


def test_equals_torchaudio_on_float_input() -> None:
    cfg = MelConfig()
    x = _clips()
    got = LogMel(cfg)(x)
    _same_numbers(got, _torchaudio_reference(x, cfg))


def test_top_db_floor_is_per_example_not_per_batch() -> None:
    x = _clips(3)
    x[2] *= 1e-3                                               # a clip 60 dB quieter than the rest
    frontend = LogMel()
    batch = frontend(x)
    for i in range(len(x)):
        alone = frontend(x[i : i + 1])[0]
        _same_numbers(batch[i], alone)
        assert batch[i].min() >= batch[i].max() - 80.0 - 1e-4
    # what a plain 3-D torchaudio call would do: one floor for the batch, set by the loudest clip
    mel = frontend.melspec(x)
    batch_floor = torchaudio.transforms.AmplitudeToDB(top_db=80.0)(mel)
    assert (batch[2] - batch_floor[2]).abs().max() > 1.0


def test_int16_is_scaled_by_32768() -> None:
    pcm = (_clips() * 32767).round().to(torch.int16)
    frontend = LogMel()
    assert torch.equal(frontend(pcm), frontend(pcm.to(torch.float32) / 32768))
    # full scale int16 → ~0 dB peak region, not +90 dB
    assert frontend(pcm).max() < 60


def test_float64_and_float16_inputs_give_float32() -> None:
    x = _clips()
    frontend = LogMel()
    assert frontend(x.double()).dtype == torch.float32
    assert frontend(x.half()).dtype == torch.float32


@pytest.mark.parametrize("samples", [16000, 160000, 160511, 160512])
def test_shape_and_frames_for(samples: int) -> None:
    cfg = MelConfig(n_mels=64, hop_length=512)
    frontend = LogMel(cfg)
    out = frontend(torch.zeros(2, samples, dtype=torch.int16))
    assert out.shape == (2, 64, frontend.frames_for(samples))
    assert frontend.frames_for(samples) == 1 + samples // 512 == cfg.frames_for(samples)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_stereo_is_downmixed_by_mean() -> None:
    left, right = _clips(2)[0:1], _clips(2)[1:2]
    stereo = torch.stack([left, right], dim=1)                 # (1, 2, T)
    frontend = LogMel()
    assert torch.allclose(frontend(stereo), frontend((left + right) / 2), atol=1e-4)
    pcm = (stereo * 32767).round().to(torch.int16)
    mono = (pcm.to(torch.float32) / 32768).mean(dim=1)
    assert torch.equal(frontend(pcm), frontend(mono))
    assert torch.equal(frontend(stereo[:, :1]), frontend(left))  # (B, 1, T) == (B, T)


def test_per_example_normalisation() -> None:
    x = _clips(4)
    out = LogMel(MelConfig(normalize="per_example"))(x)
    mean = out.mean(dim=(1, 2))
    std = out.std(dim=(1, 2), correction=0)
    assert torch.allclose(mean, torch.zeros(4), atol=1e-4)
    assert torch.allclose(std, torch.ones(4), atol=1e-4)
    silence = LogMel(MelConfig(normalize="per_example"))(torch.zeros(1, SR, dtype=torch.int16))
    assert torch.isfinite(silence).all()


def test_autocast_does_not_lower_precision() -> None:
    x = _clips()
    frontend = LogMel()
    ref = frontend(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = frontend(x)
    assert out.dtype == torch.float32
    assert torch.equal(out, ref)


def test_bad_inputs_are_refused_with_named_errors() -> None:
    frontend = LogMel()
    with pytest.raises(UsageError, match="shape"):
        frontend(torch.zeros(SR))
    with pytest.raises(TypeError, match="int16"):
        frontend(torch.zeros(1, SR, dtype=torch.int32))


def test_config_round_trip_and_validation() -> None:
    cfg = MelConfig(n_mels=64, f_max=None, top_db=None, normalize="per_example")
    assert MelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.resolved_f_max == 16000.0
    assert MelConfig.from_dict({}) == MelConfig()
    with pytest.raises(UsageError, match="newer"):
        MelConfig.from_dict({"n_mels": 64, "center": False})
    with pytest.raises(UsageError, match="f_max"):
        MelConfig(sample_rate=22050, f_max=14000.0)
    with pytest.raises(UsageError, match="normalize"):
        MelConfig(normalize="global")
    with pytest.raises(UsageError, match="hop_length"):
        MelConfig(hop_length=0)


def test_f_max_none_means_nyquist() -> None:
    x = _clips(1)
    a = LogMel(MelConfig(f_max=None))(x)
    b = LogMel(MelConfig(f_max=SR / 2))(x)
    assert torch.equal(a, b)


def test_module_moves_with_to_and_checks_the_input_device() -> None:
    frontend = LogMel().to("meta")
    with pytest.raises(UsageError, match="non_blocking"):
        frontend(torch.zeros(1, SR, dtype=torch.int16))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    pcm = (_clips() * 32767).round().to(torch.int16)
    cpu = LogMel()(pcm)
    frontend = LogMel().to("cuda")
    out = frontend(pcm.pin_memory().to("cuda", non_blocking=True))
    assert out.device.type == "cuda"
    assert out.dtype == torch.float32
    assert out.shape == cpu.shape
    # cuFFT vs pocketfft: equal to float32 rounding, in dB
    assert torch.allclose(out.cpu(), cpu, atol=1e-2, rtol=0)


# -- mel-u8: dequantisation on the device ------------------------------------------------------------


def test_dequantize_matches_the_codec_and_the_float_log_mel() -> None:
    import numpy as np

    from shardkit.device import dequantize
    from shardkit.encode import mel_u8

    cfg = MelConfig(sample_rate=SR)
    db = LogMel(cfg)(_clips(3))
    qs, ranges = [], []
    for row in db.numpy():
        q, lo, hi = mel_u8.quantize(row)
        qs.append(q)
        ranges.append((lo, hi))
    q = torch.from_numpy(np.stack(qs))
    rng = torch.tensor(ranges, dtype=torch.float32)
    out = dequantize(q, rng)
    assert out.dtype == torch.float32 and out.shape == db.shape
    for i, (lo, hi) in enumerate(ranges):
        np.testing.assert_array_equal(out[i].numpy(), mel_u8.dequantize(qs[i], lo, hi))
        assert float((out[i] - db[i]).abs().max()) <= mel_u8.max_error_db(lo, hi) + 1e-4
        assert hi - lo <= cfg.top_db + 1e-3  # the top_db floor bounds the range, so the error


def test_dequantize_refuses_mismatched_inputs() -> None:
    from shardkit.device import dequantize

    with pytest.raises(UsageError, match="uint8"):
        dequantize(torch.zeros(2, 4, 5), torch.zeros(2, 2))
    with pytest.raises(UsageError, match="mel_range"):
        dequantize(torch.zeros(2, 4, 5, dtype=torch.uint8), torch.zeros(3, 2))


def test_cpu_batches_are_computed_in_chunks_with_the_same_result(monkeypatch) -> None:
    import shardkit.device.frontend as fe

    assert fe.CPU_CHUNK < 10
    x = _clips(10, SR // 2)
    front = LogMel(MelConfig(sample_rate=SR, normalize="per_example"))
    chunked = front(x)                                   # 10 clips > CPU_CHUNK: several STFT calls
    monkeypatch.setattr(fe, "CPU_CHUNK", 1000)
    whole = front(x)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-4)
    for i in range(10):                                  # and each clip is its own: floor, normalisation
        torch.testing.assert_close(chunked[i:i + 1], front(x[i:i + 1]), rtol=1e-5, atol=1e-4)
