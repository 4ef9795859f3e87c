"""The benchmark's corpus: real encoded Ogg Vorbis recordings of varied lengths, BirdCLEF-like.

Either synthesised here (:func:`build`, cached under ``OUT/corpus`` and reused while its spec is
unchanged) or taken from a folder of audio files (:func:`from_source`). Synthesis uses
:func:`shardkit.synth.synth_recording` (per-label bird-like calls over background noise), so the
Vorbis encoder and decoder work on realistic, not silent or white-noise, signals.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from shardkit.errors import SourceError
from shardkit.ingest.sources import AUDIO_EXTENSIONS, discover
from shardkit.synth import synth_recording, write_audio

_RATES = (32000, 44100, 48000, 32000, 22050, 32000, 44100, 48000)
_LABELS = ("amecro", "barswa", "eurrob1", "grewar3", "houspa", "comcha", "eurbla", "grtit1")


@dataclass(frozen=True)
class CorpusSpec:
    """How many files, and how their durations are drawn (log-normal, clipped; plus a few long ones)."""

    n_files: int
    median_s: float
    sigma: float
    min_s: float
    max_s: float
    long_files: int        #: files forced to 3–6 minutes (BirdCLEF has many multi-minute recordings)
    seed: int = 0


#: The default corpus: 400 files of 5 s to 6 min (median 15 s), 3.3 hours of audio: ≈2,550 five-second
#: segments, ≈0.8 GB of int16 at 32 kHz per packed mode.
FULL = CorpusSpec(n_files=400, median_s=15.0, sigma=1.0, min_s=5.0, max_s=360.0, long_files=6)
#: ``--quick``: 10 short files of 5–30 s, about 2.5 minutes of audio.
QUICK = CorpusSpec(n_files=10, median_s=9.0, sigma=0.5, min_s=5.0, max_s=30.0, long_files=0)


@dataclass(frozen=True)
class AudioFile:
    path: str
    rel: str
    frames: int
    sample_rate: int
    channels: int
    format: str

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


@dataclass
class Corpus:
    src: Path                 #: the folder to pack (labels = parent folder names)
    files: list[AudioFile]
    synthetic: bool
    description: str

    @property
    def seconds(self) -> float:
        return sum(f.seconds for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(os.path.getsize(f.path) for f in self.files)

    def summary(self) -> dict:
        secs = np.array([f.seconds for f in self.files]) if self.files else np.zeros(1)
        formats: dict[str, int] = {}
        for f in self.files:
            formats[f.format] = formats.get(f.format, 0) + 1
        rates: dict[str, int] = {}
        for f in self.files:
            rates[str(f.sample_rate)] = rates.get(str(f.sample_rate), 0) + 1
        return {
            "src": str(self.src), "synthetic": self.synthetic, "description": self.description,
            "files": len(self.files), "hours": round(self.seconds / 3600, 4), "encoded_bytes": self.bytes,
            "seconds_min": round(float(secs.min()), 2), "seconds_median": round(float(np.median(secs)), 2),
            "seconds_max": round(float(secs.max()), 2), "formats": formats, "sample_rates": rates,
            "stereo_files": sum(1 for f in self.files if f.channels > 1),
        }


@dataclass(frozen=True)
class _Planned:
    rel: str
    label_id: int
    seconds: float
    sample_rate: int
    channels: int
    seed: int


def plan(spec: CorpusSpec) -> list[_Planned]:
    """Which files the corpus holds: pure and deterministic in ``spec``."""
    rng = np.random.default_rng([spec.seed, 0xBE7C])
    secs = np.clip(rng.lognormal(math.log(spec.median_s), spec.sigma, spec.n_files), spec.min_s, spec.max_s)
    if spec.long_files:
        secs[rng.choice(spec.n_files, size=min(spec.long_files, spec.n_files), replace=False)] = \
            rng.uniform(180.0, 360.0, size=min(spec.long_files, spec.n_files))
    out = []
    for i in range(spec.n_files):
        label = int(rng.integers(len(_LABELS)))
        out.append(_Planned(
            rel=f"{_LABELS[label]}/XC{100000 + i * 7919 % 900000:06d}.ogg", label_id=label,
            seconds=round(float(secs[i]), 3), sample_rate=_RATES[i % len(_RATES)],
            channels=2 if i % 4 == 3 else 1, seed=int(rng.integers(2**31)),
        ))
    return out


def _write(root: str, p: _Planned) -> None:
    audio = synth_recording(p.seconds, p.sample_rate, p.label_id, p.seed, p.channels)
    write_audio(Path(root) / p.rel, audio, p.sample_rate)  # .ogg: Ogg Vorbis


def build(root: str | os.PathLike[str], spec: CorpusSpec, *, workers: int = 2,
          log=print) -> Corpus:
    """Synthesise the corpus under ``root/audio`` (reused when ``root/corpus.json`` matches ``spec``)."""
    root = Path(root)
    audio = root / "audio"
    marker = root / "corpus.json"
    planned = plan(spec)
    want = {"spec": asdict(spec), "files": [p.rel for p in planned]}
    if marker.exists() and json.loads(marker.read_text()) == want and all((audio / p.rel).exists() for p in planned):
        log(f"corpus: reusing {len(planned)} files in {audio}")
    else:
        marker.unlink(missing_ok=True)
        total = sum(p.seconds for p in planned)
        log(f"corpus: synthesising {len(planned)} Ogg Vorbis files, {total / 3600:.2f} h of audio, "
            f"into {audio} ({workers} processes; cached for later runs) ...")
        audio.mkdir(parents=True, exist_ok=True)
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                list(pool.map(_write, [str(audio)] * len(planned), planned, chunksize=1))
        else:
            for p in planned:
                _write(str(audio), p)
        marker.write_text(json.dumps(want))
    files = [_info(audio / p.rel, p.rel) for p in planned]
    return Corpus(audio, files, True, f"synthetic BirdCLEF-like Ogg Vorbis recordings "
                                      f"(shardkit.synth.synth_recording, seed {spec.seed})")


def _info(path: Path, rel: str) -> AudioFile:
    info = sf.info(str(path))
    return AudioFile(str(path), rel, int(info.frames), int(info.samplerate), int(info.channels),
                     f"{info.format}/{info.subtype}")


def from_source(src: str | os.PathLike[str], log=print) -> Corpus:
    """Every audio file under ``src`` that libsndfile can open (the others are listed and left out)."""
    src = Path(src)
    try:
        items, _ = discover(src, order="sorted")  # the same folder scan pack uses
    except SourceError as exc:
        raise SystemExit(str(exc)) from None
    files: list[AudioFile] = []
    bad: list[str] = []
    for item in items:
        try:
            f = _info(Path(item.path), item.rel)
        except Exception as exc:
            bad.append(f"{item.path}: {exc}")
            continue
        if f.frames > 0:
            files.append(f)
    for b in bad:
        log(f"corpus: leaving out {b}")
    if not files:
        raise SystemExit(f"{src}: no audio files libsndfile can read ({', '.join(AUDIO_EXTENSIONS)})")
    return Corpus(src, files, False, f"the audio files under {src}")
