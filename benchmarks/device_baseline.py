"""The common baseline of the device-stage benchmark and the synthetic data both sides use.

* :func:`synth_clips`, :func:`synth_noise`, :func:`synth_labels` — the batch, the noise bank and the labels:
  simple signals made in memory (the device stage is timed, not reading or decoding).
* :class:`KaggleStyleDataset` — per-example augmentation and log-mel, the way a typical notebook does it.
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torchaudio

from shardkit.device import AugmentConfig, MelConfig


def synth_clips(n: int, samples: int, sample_rate: int, seed: int = 0) -> np.ndarray:
    """int16 ``(n, samples)``: per clip a pulsed, sweeping tone with a harmonic over white noise, its own loudness."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples, dtype=np.float64) / sample_rate
    out = np.empty((n, samples), np.int16)
    for i in range(n):
        f0 = rng.uniform(500.0, 6000.0)
        sweep = rng.uniform(-300.0, 300.0)
        env = (0.5 * (1.0 + np.sin(2 * np.pi * rng.uniform(0.5, 6.0) * t + rng.uniform(0, 2 * np.pi)))) ** 4
        phase = 2 * np.pi * (f0 * t + sweep * t * t)
        x = env * (np.sin(phase) + 0.3 * np.sin(2 * phase)) + rng.uniform(0.005, 0.05) * rng.standard_normal(samples)
        x *= rng.uniform(0.05, 0.6) / max(np.abs(x).max(), 1e-9)
        out[i] = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
    return out


def synth_noise(n: int, samples: int, seed: int = 1) -> list[np.ndarray]:
    """``n`` float32 ``(samples,)`` background recordings: pink-ish noise (white noise shaped by 1/sqrt(f))."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        spec = np.fft.rfft(rng.standard_normal(samples))
        spec /= np.sqrt(np.maximum(np.arange(spec.shape[0]), 1.0))
        x = np.fft.irfft(spec, samples)
        out.append((0.2 * x / np.abs(x).max()).astype(np.float32))
    return out


def synth_labels(n: int, classes: int, seed: int = 2) -> np.ndarray:
    """float32 ``(n, classes)`` multi-hot: one primary label per clip, a secondary one for every third."""
    rng = np.random.default_rng(seed)
    y = np.zeros((n, classes), np.float32)
    y[np.arange(n), rng.integers(0, classes, n)] = 1.0
    y[np.arange(0, n, 3), rng.integers(0, classes, len(range(0, n, 3)))] = 1.0
    return y


class KaggleStyleDataset(torch.utils.data.Dataset):
    """The common baseline, written the way a typical notebook does it: one clip per ``__getitem__``.

    Gain, shift (``torch.roll``), noise at a random SNR and SpecAugment-style masks each with p = 0.5, drawn from
    Python's ``random`` (the DataLoader seeds it per worker); torchaudio ``MelSpectrogram`` + ``AmplitudeToDB`` with
    the same settings as :class:`MelConfig`. Returns float32 ``(n_mels, frames)`` and the clip's labels.
    """

    def __init__(self, clips: np.ndarray, labels: np.ndarray, noise: np.ndarray, mel: MelConfig,
                 aug: AugmentConfig, length: int) -> None:
        self.clips, self.labels, self.noise, self.aug, self.length = clips, labels, noise, aug, length
        self.melspec = torchaudio.transforms.MelSpectrogram(
            sample_rate=mel.sample_rate, n_fft=mel.n_fft, win_length=mel.resolved_win_length,
            hop_length=mel.hop_length, f_min=mel.f_min, f_max=mel.resolved_f_max, n_mels=mel.n_mels, power=mel.power)
        self.to_db = torchaudio.transforms.AmplitudeToDB(top_db=mel.top_db)
        self.freq_mask = torchaudio.transforms.FrequencyMasking(freq_mask_param=aug.freq_width)
        self.time_mask = torchaudio.transforms.TimeMasking(time_mask_param=aug.time_width)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = i % len(self.clips)
        wav = torch.from_numpy(self.clips[k].astype(np.float32) / 32768.0)
        n = wav.shape[0]
        if random.random() < 0.5:
            wav = wav * 10 ** (random.uniform(self.aug.gain_min_db, self.aug.gain_max_db) / 20)
        if random.random() < 0.5:
            wav = torch.roll(wav, random.randint(-n // 2, n // 2))
        if random.random() < 0.5:
            start = random.randint(0, len(self.noise) - n)
            noise = torch.from_numpy(self.noise[start:start + n])
            snr = random.uniform(*self.aug.noise_snr_db)
            scale = torch.sqrt(wav.pow(2).mean() / (noise.pow(2).mean() * 10 ** (snr / 10) + 1e-12))
            wav = wav + scale * noise
        mel = self.to_db(self.melspec(wav))
        if random.random() < 0.5:
            for _ in range(self.aug.freq_masks):
                mel = self.freq_mask(mel)
            for _ in range(self.aug.time_masks):
                mel = self.time_mask(mel)
        return mel, torch.from_numpy(self.labels[k])
