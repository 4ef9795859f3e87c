"""The end-to-end benchmark's data: one corpus prepared four ways, and the seed's two datasets.

:func:`prepare` (with every core of the machine, before the benchmark pins itself to 2) makes, from the
benchmarks' Ogg Vorbis corpus (:mod:`benchmarks.corpus`):

* ``presplit/``: the seed's cure, every recording decoded, downmixed, resampled to 32 kHz and cut into
  ``clip_seconds`` 16-bit WAV files (the last piece zero-padded), labels from the folder names;
* ``wav16/`` and ``mel-u8/``: shardkit shard sets in recordings mode (random crops at read time), packed
  the way ``shardkit pack`` does it (:func:`benchmarks.packbench.run_pack`).

Every pipeline yields the same number of clips per epoch, ``epoch_items`` = recordings × ``crops``:
shardkit's ``crops_per_recording`` is ``crops``, and the seed's map-style datasets draw as many items per
epoch with a ``RandomSampler(num_samples=epoch_items)`` (without replacement; whole permutations first).
``crops`` is chosen so that an epoch holds about as many clips as the corpus has ``clip_seconds`` pieces.
"""

from __future__ import annotations

import json
import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torchaudio

from benchmarks import corpus as corpus_mod
from benchmarks import packbench
from shardkit.device import MelConfig

SAMPLE_RATE = 32000
NOISE_RECORDINGS = 8
NOISE_SECONDS = 10.0


@dataclass(frozen=True)
class Prepared:
    """Where each form of the corpus lives and how an epoch is counted."""

    corpus: dict[str, Any]          #: :meth:`benchmarks.corpus.Corpus.summary`
    files: list[tuple[str, str]]    #: (ogg path, label) per recording
    presplit: list[tuple[str, str]]  #: (wav path, label) per piece
    wav16: str
    mel_u8: str
    classes: list[str]
    recordings: int                 #: samples of the recordings-mode shard sets (recordings, or chunks of them)
    crops: int                      #: crops per recording per epoch
    clip_seconds: float
    sets: dict[str, Any]            #: bytes and counts of each prepared form

    @property
    def epoch_items(self) -> int:
        return self.recordings * self.crops


def _split_one(args: tuple[str, str, str, float]) -> list[str]:
    """Decode one recording, convert it as pack does (mean downmix, soxr HQ, int16) and write its pieces."""
    from shardkit.ingest.decode import convert

    path, rel, out_dir, clip_seconds = args
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    pcm = convert(x, sr, SAMPLE_RATE, mono=True)[:, 0]
    n = int(round(clip_seconds * SAMPLE_RATE))
    pieces = max(1, -(-len(pcm) // n))
    pcm = np.concatenate([pcm, np.zeros(pieces * n - len(pcm), np.int16)])
    stem = Path(out_dir) / Path(rel).with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(pieces):
        p = f"{stem}_{k:04d}.wav"
        sf.write(p, pcm[k * n:(k + 1) * n], SAMPLE_RATE, subtype="PCM_16")
        out.append(p)
    return out


def _presplit(corpus: corpus_mod.Corpus, out: Path, clip_seconds: float, workers: int) -> list[str]:
    marker = out / "presplit.json"
    want = {"clip_seconds": clip_seconds, "files": [f.rel for f in corpus.files]}
    if marker.exists() and json.loads(marker.read_text()).get("want") == want:
        return json.loads(marker.read_text())["pieces"]
    jobs = [(f.path, f.rel, str(out), clip_seconds) for f in corpus.files]
    with ProcessPoolExecutor(workers) as pool:
        pieces = [p for ps in pool.map(_split_one, jobs, chunksize=1) for p in ps]
    marker.write_text(json.dumps({"want": want, "pieces": pieces}))
    return pieces


def _pack(src: Path, out: Path, codec: str, workers: int, log) -> dict[str, Any]:
    marker = out.parent / f"{out.name}.json"
    want = {"src": str(src), "codec": codec, "files": sorted(os.listdir(src))}
    if marker.exists() and (out / "manifest.json").exists() and json.loads(marker.read_text())["want"] == want:
        return json.loads(marker.read_text())["pack"]
    log(f"e2e: packing {codec} (recordings mode, {workers} workers) ...")
    p = packbench.run_pack(src, out, "recordings", workers, "256MB", codec)
    p = {k: p[k] for k in ("samples", "shards", "shard_bytes", "index_bytes", "elapsed_s", "stored_seconds")}
    marker.write_text(json.dumps({"want": want, "pack": p}))
    return p


def _dir_bytes(paths: list[str]) -> int:
    return sum(os.path.getsize(p) for p in paths)


def prepare(out: Path, *, quick: bool, clip_seconds: float, workers: int, log=print) -> Prepared:
    """Build (or reuse) the corpus and its presplit and packed forms under ``out``."""
    spec = corpus_mod.QUICK if quick else corpus_mod.FULL
    corpus = corpus_mod.build(out / ("corpus-quick" if quick else "corpus"), spec, workers=workers, log=log)
    tag = f"e2e-{'quick' if quick else 'full'}-{clip_seconds:g}s"
    pieces = _presplit(corpus, out / tag / "presplit", clip_seconds, workers)
    packs = {codec: _pack(corpus.src, out / tag / codec, codec, workers, log) for codec in ("wav16", "mel-u8")}
    label_of = lambda p: Path(p).parent.name  # noqa: E731
    classes = sorted({label_of(f.path) for f in corpus.files})
    recordings = packs["wav16"]["samples"]
    crops = max(1, round(len(pieces) / recordings))
    sets = {"ogg": {"files": len(corpus.files), "bytes": corpus.bytes},
            "presplit": {"files": len(pieces), "bytes": _dir_bytes(pieces)},
            **{k: {"samples": v["samples"], "shards": v["shards"], "bytes": v["shard_bytes"] + v["index_bytes"]}
               for k, v in packs.items()}}
    return Prepared(corpus.summary(), [(f.path, label_of(f.path)) for f in corpus.files],
                    [(p, label_of(p)) for p in pieces], str(out / tag / "wav16"), str(out / tag / "mel-u8"),
                    classes, recordings, crops, clip_seconds, sets)


def prepared_dict(p: Prepared) -> dict[str, Any]:
    """What the results JSON records of the data (no file lists)."""
    d = asdict(p)
    for k in ("files", "presplit"):
        d.pop(k)
    d["epoch_items"] = p.epoch_items
    return d


# ------------------------------------------------------------------------------ the seed's datasets


def noise_list(seed: int = 1) -> list[np.ndarray]:
    """The preloaded background noise both the seed's datasets and shardkit's NoiseBank use: float32 arrays."""
    from benchmarks.device_baseline import synth_noise

    return synth_noise(NOISE_RECORDINGS, int(NOISE_SECONDS * SAMPLE_RATE), seed)


def cpu_mel(mel: MelConfig) -> torch.nn.Module:
    """torchaudio MelSpectrogram + AmplitudeToDB with the settings of ``mel`` (as the seed computes it)."""
    return torch.nn.Sequential(
        torchaudio.transforms.MelSpectrogram(
            sample_rate=mel.sample_rate, n_fft=mel.n_fft, win_length=mel.resolved_win_length,
            hop_length=mel.hop_length, f_min=mel.f_min, f_max=mel.resolved_f_max, n_mels=mel.n_mels,
            power=mel.power),
        torchaudio.transforms.AmplitudeToDB(top_db=mel.top_db))


def _multi_hot(label: str, classes: list[str]) -> torch.Tensor:
    y = torch.zeros(len(classes))
    y[classes.index(label)] = 1.0
    return y


def _add_noise(wav: torch.Tensor, noise: list[np.ndarray], p: float = 0.5) -> torch.Tensor:
    """The seed's ``EnvNoiseLoader.add_random_noise``: a random noise recording at a random SNR (3–30 dB)."""
    if random.random() >= p:
        return wav
    n = random.choice(noise)
    start = random.randint(0, max(0, len(n) - wav.shape[0]))
    piece = torch.from_numpy(np.resize(n[start:start + wav.shape[0]], wav.shape[0]))
    snr = random.uniform(3.0, 30.0)
    scale = torch.sqrt(wav.pow(2).mean() / (piece.pow(2).mean() * 10 ** (snr / 10) + 1e-12))
    return wav + scale * piece


class SeedOggDataset(torch.utils.data.Dataset):
    """The seed's starting point: per item, load a whole Ogg file with soundfile, downmix, resample to
    32 kHz when the file is at another rate, crop ``clip_seconds`` at random (zero-pad a short file), add
    noise from the preloaded list, torchaudio mel on the CPU. Returns float32 ``(n_mels, frames)`` dB and
    the multi-hot label ``(n_classes,)``."""

    def __init__(self, files: list[tuple[str, str]], classes: list[str], clip_seconds: float,
                 mel: MelConfig, noise: list[np.ndarray]) -> None:
        self.files, self.classes, self.noise = files, classes, noise
        self.samples = int(round(clip_seconds * SAMPLE_RATE))
        self.mel = cpu_mel(mel)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        path, label = self.files[i]
        x, sr = sf.read(path, dtype="float32", always_2d=True)
        wav = torch.from_numpy(x.mean(axis=1))
        if sr != SAMPLE_RATE:
            wav = torchaudio.functional.resample(wav, sr, SAMPLE_RATE)
        if wav.shape[0] > self.samples:
            start = random.randint(0, wav.shape[0] - self.samples)
            wav = wav[start:start + self.samples]
        else:
            wav = torch.nn.functional.pad(wav, (0, self.samples - wav.shape[0]))
        wav = _add_noise(wav, self.noise)
        with torch.no_grad():
            return self.mel(wav), _multi_hot(label, self.classes)


class PresplitWavDataset(torch.utils.data.Dataset):
    """The seed's cures: per item, one presplit 16-bit WAV of ``clip_seconds`` (soundfile), noise from the
    preloaded list added on the CPU. Returns float32 ``(samples,)`` in [-1, 1] (the mel is computed on the
    device) and the multi-hot label."""

    def __init__(self, pieces: list[tuple[str, str]], classes: list[str], noise: list[np.ndarray]) -> None:
        self.pieces, self.classes, self.noise = pieces, classes, noise

    def __len__(self) -> int:
        return len(self.pieces)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        path, label = self.pieces[i]
        x, _ = sf.read(path, dtype="int16")
        wav = torch.from_numpy(x.astype(np.float32) / 32768.0)
        return _add_noise(wav, self.noise), _multi_hot(label, self.classes)
