"""The built-in demo: a small synthetic BirdCLEF-shaped corpus, and pack → stream → log-mel end to end.

* :func:`synth_recording` — one synthetic "bird" recording: a per-label call pattern over noise.
* :func:`plan_demo_corpus` — what the corpus holds (files, labels, formats, rates, durations), pure.
* :func:`make_demo_corpus` — writes ``train_audio/<label>/XC<id>.<ext>`` + ``train_metadata.csv``.
* :func:`run_demo` — makes the corpus, packs it, streams it through a DataLoader and :class:`LogMel`,
  and returns a :class:`DemoReport` of sizes and speeds.

The audio is synthetic (no recordings are shipped or downloaded); the same seed writes the same bytes.
torch and the pack/read stages are imported only by :func:`run_demo`.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from shardkit.errors import UsageError

log = logging.getLogger(__name__)

METADATA_NAME = "train_metadata.csv"
AUDIO_DIR = "train_audio"
#: Columns of ``train_metadata.csv``, in BirdCLEF's order.
CSV_COLUMNS = (
    "primary_label", "secondary_labels", "type", "latitude", "longitude", "scientific_name",
    "common_name", "author", "license", "rating", "url", "filename",
)
#: (eBird code, scientific name, common name) of the demo labels, in label-id order.
SPECIES = (
    ("amecro", "Corvus brachyrhynchos", "American Crow"),
    ("barswa", "Hirundo rustica", "Barn Swallow"),
    ("eurrob1", "Erithacus rubecula", "European Robin"),
    ("grewar3", "Acrocephalus arundinaceus", "Great Reed Warbler"),
    ("houspa", "Passer domesticus", "House Sparrow"),
    ("comcha", "Fringilla coelebs", "Common Chaffinch"),
    ("eurbla", "Turdus merula", "Eurasian Blackbird"),
    ("grtit1", "Parus major", "Great Tit"),
    ("sonthr1", "Turdus philomelos", "Song Thrush"),
    ("blackc1", "Sylvia atricapilla", "Eurasian Blackcap"),
    ("comrav", "Corvus corax", "Common Raven"),
    ("wlwwar", "Phylloscopus trochilus", "Willow Warbler"),
)
LICENSE = "Creative Commons Attribution-NonCommercial-ShareAlike 4.0"
#: (extension, libsndfile format, libsndfile subtype) of the non-Ogg files, in turn.
_OTHER_FORMATS = (("flac", "FLAC", "PCM_16"), ("mp3", "MP3", "MPEG_LAYER_III"), ("wav", "WAV", "PCM_16"))
_RATE_CYCLE = (32000, 44100, 32000, 48000, 22050, 32000, 48000, 44100)
_CHANNEL_CYCLE = (1, 1, 2, 1)
_BLOCK_FRAMES = 32768  # libsndfile's Vorbis encoder crashes on one huge write: write in blocks
_CALL_TYPES = ("['call']", "['song']", "['call', 'song']", "['flight call']", "['alarm call']")
_AUTHORS = ("Synth Recordist A", "Synth Recordist B", "Synth Recordist C", "Synth Recordist D")


# ---------------------------------------------------------------------------------------------
# synthesis


@dataclass(frozen=True)
class _Species:
    """The call pattern of one label: frequencies in Hz, durations in seconds."""

    kind: str               # "whistle" (down-sweep), "chip" (up-sweep), "trill" (fast FM), "caw" (harmonic)
    f0: float               # base frequency of a note
    sweep: float            # frequency change over a note (or FM depth for trills)
    note_s: float           # note duration
    gap_s: float            # silence between notes of a phrase
    notes: int              # notes per phrase
    phrase_every_s: float   # mean time between phrase starts
    trill_hz: float         # FM rate for trills
    harmonics: tuple[float, ...]  # amplitudes of harmonics 1, 2, ...


def _species(label_id: int) -> _Species:
    rng = np.random.default_rng([0x5EED, label_id])
    kind = ("caw", "whistle", "trill", "chip")[label_id % 4]
    if kind == "caw":
        f0 = rng.uniform(550, 900)
        return _Species(kind, f0, -0.15 * f0, rng.uniform(0.25, 0.4), rng.uniform(0.15, 0.3),
                        int(rng.integers(2, 5)), rng.uniform(1.8, 3.0), 0.0,
                        (1.0, 0.7, 0.5, 0.35, 0.25, 0.15))
    f0 = rng.uniform(2000, 5200)
    sweep = rng.uniform(0.2, 0.45) * f0
    if kind == "whistle":
        return _Species(kind, f0 + sweep, -sweep, rng.uniform(0.12, 0.3), rng.uniform(0.05, 0.15),
                        int(rng.integers(1, 4)), rng.uniform(1.0, 2.2), 0.0, (1.0, 0.15))
    if kind == "trill":
        return _Species(kind, f0, rng.uniform(0.05, 0.15) * f0, rng.uniform(0.4, 0.9), rng.uniform(0.2, 0.4),
                        int(rng.integers(1, 3)), rng.uniform(1.5, 3.0), rng.uniform(18, 40), (1.0, 0.2))
    return _Species(kind, f0, sweep, rng.uniform(0.03, 0.07), rng.uniform(0.03, 0.08),
                    int(rng.integers(3, 9)), rng.uniform(1.0, 2.5), 0.0, (1.0, 0.3, 0.1))


def _calls(frames: int, sample_rate: int, species: _Species, rng: np.random.Generator) -> np.ndarray:
    """float64 (frames,): phrases of notes of ``species`` at random times, peak about 1."""
    freq = np.zeros(frames)
    env = np.zeros(frames)
    jitter = rng.uniform(0.95, 1.05)              # this individual's pitch
    t = rng.uniform(0.0, min(1.0, species.phrase_every_s))
    seconds = frames / sample_rate
    while t < seconds:
        if rng.random() > 0.15:                   # now and then a phrase is skipped
            loud = rng.uniform(0.35, 1.0)
            start = t
            for _ in range(species.notes):
                a = int(start * sample_rate)
                n = int(species.note_s * rng.uniform(0.85, 1.15) * sample_rate)
                b = min(a + n, frames)
                if b - a < 8:
                    break
                u = np.arange(b - a) / n          # 0 → 1 over the note
                if species.kind == "trill":
                    f = species.f0 + species.sweep * np.sin(2 * np.pi * species.trill_hz * u * species.note_s)
                else:
                    f = species.f0 + species.sweep * u
                freq[a:b] = f * jitter
                env[a:b] = loud * np.sin(np.pi * u) ** 2
                start += species.note_s + species.gap_s * rng.uniform(0.8, 1.2)
        t += species.phrase_every_s * rng.uniform(0.6, 1.6)
    out = np.zeros(frames)
    sounding = np.flatnonzero(env)                # sines only where a note sounds (~10-30% of the time)
    if sounding.size:
        f = freq[sounding]
        phase = (2 * np.pi / sample_rate) * np.cumsum(f)
        tone = np.zeros(sounding.size)
        for k, amp in enumerate(species.harmonics, start=1):
            keep = k * f < 0.45 * sample_rate     # no aliasing at 22050 Hz
            tone[keep] += amp * np.sin(k * phase[keep])
        out[sounding] = tone * env[sounding] / sum(species.harmonics)
    return out


def synth_recording(
    seconds: float,
    sample_rate: int,
    label_id: int,
    seed: int,
    channels: int = 1,
    *,
    secondary_ids: Sequence[int] = (),
) -> np.ndarray:
    """A synthetic bird recording: the call pattern of ``label_id`` over low-level background noise.

    Each label has its own pattern (harmonic "caws", down-sweeping whistles, trills or rapid
    up-sweeping chips, with label-specific frequencies in 0.5–8 kHz, note lengths and phrase rates);
    ``secondary_ids`` add quieter calls of other labels. Everything is a function of the arguments.

    Args:
        seconds: duration in seconds; the result has ``round(seconds * sample_rate)`` frames.
        sample_rate: Hz.
        label_id: which call pattern (any int ≥ 0).
        seed: randomness of timing, loudness and noise.
        channels: 1 or 2; stereo channels differ in gain, delay and noise.
        secondary_ids: labels heard in the background.

    Returns:
        float32 ``(frames, channels)``, clipped to ±0.95 (typical peaks 0.2–0.6).
    """
    if seconds <= 0 or sample_rate <= 0 or channels not in (1, 2) or label_id < 0:
        raise UsageError(
            f"synth_recording needs seconds > 0, sample_rate > 0, channels 1 or 2 and label_id >= 0; "
            f"got {seconds!r}, {sample_rate!r}, {channels!r}, {label_id!r}"
        )
    frames = int(round(seconds * sample_rate))
    rng = np.random.default_rng([int(seed), int(label_id), int(sample_rate)])
    calls = _calls(frames, sample_rate, _species(label_id), rng)
    for other in secondary_ids:
        calls += rng.uniform(0.2, 0.45) * _calls(frames, sample_rate, _species(int(other)), rng)
    gain = rng.uniform(0.3, 0.6)
    noise_level = rng.uniform(0.004, 0.02)
    noise = noise_level * _noise(frames, sample_rate, rng)
    out = np.empty((frames, channels), dtype=np.float32)
    out[:, 0] = gain * calls + noise
    if channels == 2:                             # the second microphone: a little later and softer
        delay = int(rng.integers(1, 24))
        later = np.concatenate([np.zeros(delay), calls[: frames - delay]])[:frames]
        out[:, 1] = gain * rng.uniform(0.6, 0.9) * later + noise[::-1]  # reversed: uncorrelated noise
    np.clip(out, -0.95, 0.95, out=out)
    return out


def _noise(frames: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """float32 (frames,): soft background noise, rms about 1, louder at low frequencies and slowly
    swelling like wind: white noise through a blend of moving averages (one cumulative sum)."""
    longest = 13
    white = rng.standard_normal(frames + longest, dtype=np.float32)
    c = np.concatenate([[0.0], np.cumsum(white, dtype=np.float64)])
    out = np.zeros(frames)
    for n in (2, 5, 13):                          # their notches differ, so the blend has none
        out += (c[longest + 1 :] - c[longest + 1 - n : -n]) / n
    out *= 1.0 / np.std(out[: min(frames, 65536)])
    step = 1024                                   # the swell is slow: compute it per 1024 samples
    coarse = np.arange(0, frames + step, step) / sample_rate
    swell = 1.0 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * coarse + rng.uniform(0, 2 * np.pi))
    swell = np.repeat(swell, step)[:frames]
    return (out * swell).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# the corpus


@dataclass(frozen=True)
class DemoFile:
    """One file of the demo corpus, as planned (and as it decodes)."""

    filename: str                  # relative to train_audio, e.g. "amecro/XC100123.ogg"
    primary_label: str
    label_id: int
    secondary_labels: tuple[str, ...]
    secondary_ids: tuple[int, ...]
    format: str                    # libsndfile major format: "OGG", "FLAC", "MP3", "WAV"
    subtype: str                   # libsndfile subtype: "VORBIS", "PCM_16", ...
    sample_rate: int               # Hz
    channels: int
    frames: int                    # samples per channel
    seed: int                      # synth_recording seed
    xc_id: int
    call_type: str
    latitude: float
    longitude: float
    rating: float
    author: str

    @property
    def seconds(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate

    def csv_row(self) -> dict[str, str]:
        """This file's row of ``train_metadata.csv``."""
        scientific, common = _species_names(self.label_id)
        return {
            "primary_label": self.primary_label,
            "secondary_labels": str(list(self.secondary_labels)),
            "type": self.call_type,
            "latitude": f"{self.latitude:.4f}",
            "longitude": f"{self.longitude:.4f}",
            "scientific_name": scientific,
            "common_name": common,
            "author": self.author,
            "license": LICENSE,
            "rating": f"{self.rating:.1f}",
            "url": f"https://example.org/shardkit-demo/XC{self.xc_id}",
            "filename": self.filename,
        }


def label_names(n_labels: int) -> list[str]:
    """The first ``n_labels`` demo labels: eBird-style codes (``amecro``, ``barswa``, ...)."""
    return [_species_code(i) for i in range(n_labels)]


def _species_code(label_id: int) -> str:
    return SPECIES[label_id][0] if label_id < len(SPECIES) else f"synth{label_id:03d}"


def _species_names(label_id: int) -> tuple[str, str]:
    if label_id < len(SPECIES):
        return SPECIES[label_id][1], SPECIES[label_id][2]
    return f"Avis synthetica {label_id}", f"Synthetic Bird {label_id}"


def plan_demo_corpus(*, n_files: int = 48, n_labels: int = 6, seed: int = 0) -> list[DemoFile]:
    """Decide every file of the demo corpus without writing anything (pure and deterministic).

    Labels are imbalanced (every label gets at least one file when ``n_files >= n_labels``), about
    one file in five has secondary labels, three in four are Ogg Vorbis and the rest FLAC, MP3 and
    WAV in turn; rates cycle through 32000/44100/48000/22050 Hz, one file in four is stereo;
    durations are 3–90 s, log-normal around 12 s, with one long (75–90 s) file when ``n_files >= 4``.

    Returns:
        the files sorted by ``filename``.
    """
    if n_files < 1 or n_labels < 1:
        raise UsageError(f"the demo corpus needs n_files >= 1 and n_labels >= 1, got {n_files}, {n_labels}")
    rng = np.random.default_rng([int(seed), 0xC0])
    names = label_names(n_labels)

    weights = 1.0 / np.arange(1, n_labels + 1) ** 0.8
    label_ids = list(range(min(n_files, n_labels)))
    label_ids += rng.choice(n_labels, size=n_files - len(label_ids), p=weights / weights.sum()).tolist()
    label_ids = rng.permutation(label_ids).tolist()

    n_other = min(n_files, len(_OTHER_FORMATS) * max(1, n_files // 12))
    formats = [_OTHER_FORMATS[i % len(_OTHER_FORMATS)] for i in range(n_other)]
    formats += [("ogg", "OGG", "VORBIS")] * (n_files - n_other)
    formats = [formats[i] for i in rng.permutation(n_files)]
    rates = [_RATE_CYCLE[i % len(_RATE_CYCLE)] for i in rng.permutation(n_files)]
    channels = [_CHANNEL_CYCLE[i % len(_CHANNEL_CYCLE)] for i in rng.permutation(n_files)]

    seconds = np.clip(rng.lognormal(mean=math.log(12.0), sigma=0.9, size=n_files), 3.0, 90.0)
    if n_files >= 4:
        seconds[int(np.argmax(seconds))] = rng.uniform(75.0, 90.0)
    xc_ids = (100000 + rng.choice(900000, size=n_files, replace=False)).tolist()

    files = []
    for i in range(n_files):
        lid = int(label_ids[i])
        secondary: list[int] = []
        if n_labels > 1 and rng.random() < 0.2:
            others = [j for j in range(n_labels) if j != lid]
            secondary = sorted(rng.choice(others, size=min(len(others), int(rng.integers(1, 3))),
                                          replace=False).tolist())
        ext, fmt, subtype = formats[i]
        if fmt == "FLAC" and i % 2:
            subtype = "PCM_24"
        sr = rates[i]
        files.append(DemoFile(
            filename=f"{names[lid]}/XC{xc_ids[i]}.{ext}",
            primary_label=names[lid],
            label_id=lid,
            secondary_labels=tuple(names[j] for j in secondary),
            secondary_ids=tuple(secondary),
            format=fmt,
            subtype=subtype,
            sample_rate=sr,
            channels=channels[i],
            frames=int(round(float(seconds[i]) * sr)),
            seed=int(rng.integers(2**31)),
            xc_id=int(xc_ids[i]),
            call_type=_CALL_TYPES[int(rng.integers(len(_CALL_TYPES)))],
            latitude=round(float(rng.uniform(-40.0, 65.0)), 4),
            longitude=round(float(rng.uniform(-125.0, 150.0)), 4),
            rating=float(rng.integers(0, 11)) / 2,
            author=_AUTHORS[int(rng.integers(len(_AUTHORS)))],
        ))
    return sorted(files, key=lambda f: f.filename)


def make_demo_corpus(
    root: str | os.PathLike[str],
    *,
    n_files: int = 48,
    n_labels: int = 6,
    seed: int = 0,
    workers: int | None = None,
) -> Path:
    """Write a small synthetic corpus shaped like a BirdCLEF competition folder.

    ``root/train_audio/<label>/XC<id>.<ogg|flac|mp3|wav>`` plus ``root/train_metadata.csv`` with
    BirdCLEF's columns (:data:`CSV_COLUMNS`); see :func:`plan_demo_corpus` for what it holds
    (the default 48 files are about 15 minutes of audio). The same arguments write byte-identical
    files (Ogg stream serial numbers, random in libsndfile, are fixed afterwards). Files are written
    under a temporary name and renamed; the CSV is written last, so its presence marks a finished corpus.

    Args:
        root: folder to write into (created; existing demo files are overwritten, nothing is deleted).
        n_files: number of recordings.
        n_labels: number of labels (the first ones of :data:`SPECIES`).
        seed: seed of everything.
        workers: encoding threads; ``None`` = ``min(2, os.cpu_count())``. Does not change the output.

    Returns:
        the path of ``train_metadata.csv``.
    """
    root = Path(root)
    files = plan_demo_corpus(n_files=n_files, n_labels=n_labels, seed=seed)
    audio_root = root / AUDIO_DIR
    for label in sorted({f.primary_label for f in files}):
        (audio_root / label).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_threads = workers if workers is not None else min(2, os.cpu_count() or 1)
    if n_threads > 1:
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            list(pool.map(lambda f: _write_audio(audio_root, f), files))
    else:
        for f in files:
            _write_audio(audio_root, f)
    csv_path = root / METADATA_NAME
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for f in files:
            writer.writerow(f.csv_row())
    os.replace(tmp, csv_path)
    log.info("demo corpus: %d files, %.1f min of audio in %s (%.1fs)", len(files),
             sum(f.seconds for f in files) / 60, root, time.perf_counter() - t0)
    return csv_path


def _write_audio(audio_root: Path, f: DemoFile) -> None:
    audio = synth_recording(f.frames / f.sample_rate, f.sample_rate, f.label_id, f.seed, f.channels,
                            secondary_ids=f.secondary_ids)
    path = audio_root / f.filename
    tmp = path.with_name(path.name + ".tmp")
    with sf.SoundFile(tmp, "w", samplerate=f.sample_rate, channels=f.channels,
                      format=f.format, subtype=f.subtype) as out:
        for start in range(0, f.frames, _BLOCK_FRAMES):
            out.write(audio[start : start + _BLOCK_FRAMES])
    if f.format == "OGG":
        _fix_ogg_serial(tmp, serial=f.xc_id)
    os.replace(tmp, path)


# Ogg pages carry a CRC-32 with polynomial 0x04C11DB7, MSB first, init 0, no final xor: zlib's
# (reflected) CRC-32 over bit-reversed bytes, bit-reversed back, with zlib's init/xor undone.
_REVERSE_BITS = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _ogg_crc(page: bytes) -> int:
    reflected = zlib.crc32(page.translate(_REVERSE_BITS), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


def _fix_ogg_serial(path: Path, serial: int) -> None:
    """Rewrite the (random) stream serial number of every Ogg page to ``serial``; fix the CRCs."""
    data = bytearray(path.read_bytes())
    pos = 0
    while pos < len(data):
        if data[pos : pos + 4] != b"OggS" or pos + 27 > len(data):
            raise ValueError(f"{path}: no Ogg page at byte {pos}")
        n_segments = data[pos + 26]
        size = 27 + n_segments + sum(data[pos + 27 : pos + 27 + n_segments])
        data[pos + 14 : pos + 18] = (serial & 0xFFFFFFFF).to_bytes(4, "little")
        data[pos + 22 : pos + 26] = b"\0\0\0\0"
        data[pos + 22 : pos + 26] = _ogg_crc(bytes(data[pos : pos + size])).to_bytes(4, "little")
        pos += size
    path.write_bytes(bytes(data))


def read_demo_metadata(csv_path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The rows of a ``train_metadata.csv``, as dicts of strings."""
    with open(csv_path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------------------------------------
# the end-to-end demo


@dataclass
class DemoReport:
    """What :func:`run_demo` measured. Rates are wall-clock, including DataLoader worker start-up."""

    corpus_files: int
    corpus_hours: float                 # audio hours in the source corpus
    pack_seconds: float                 # wall time of pack()
    pack_audio_hours_per_minute: float  # audio hours packed per minute of pack time
    shards: int
    shard_bytes: int
    packed_hours: float                 # audio hours in the shard set
    rejects: int
    epochs: int
    batch_size: int
    clips_streamed: int                 # valid clips per pass (all epochs)
    reader_clips_per_s: float           # DataLoader alone (batches moved to the device)
    mel_clips_per_s: float              # DataLoader + transfer + LogMel, end to end
    mel_compute_clips_per_s: float      # LogMel alone on a batch already on the device
    mel_shape: tuple[int, ...]          # (B, n_mels, frames) of a full batch
    device: str
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """A short human-readable summary, one fact per line (for the CLI to print)."""
        return [
            f"corpus     {self.corpus_files} files, {self.corpus_hours * 60:.1f} min of audio",
            f"pack       {self.pack_seconds:.1f}s, {self.pack_audio_hours_per_minute:.2f} audio-hours/min, "
            f"{self.shards} shards, {self.shard_bytes / 1e6:.1f} MB, {self.rejects} rejects",
            f"reader     {self.reader_clips_per_s:.0f} clips/s ({self.clips_streamed} clips, "
            f"{self.epochs} epoch(s), batch {self.batch_size})",
            f"+ device stage (augment + log-mel) {self.mel_clips_per_s:.0f} clips/s end to end on {self.device}; "
            f"stage alone {self.mel_compute_clips_per_s:.0f} clips/s, output {tuple(self.mel_shape)}",
            *self.notes,
        ]


def run_demo(
    workdir: str | os.PathLike[str],
    *,
    workers: int = 2,
    epochs: int = 1,
    batch_size: int = 32,
    progress: Callable[..., Any] | None = None,
) -> DemoReport:
    """Make the demo corpus (if absent), pack it, and stream it into the device stage (augmentations +
    log-mel, :class:`shardkit.device.DevicePipeline`).

    Layout: ``workdir/corpus`` (made once, reused) and ``workdir/shards`` (re-packed on every call
    with ``overwrite=True``, so the pack time is real; pack refuses a folder holding other files).

    Args:
        workdir: folder for the corpus and the shard set.
        workers: pack processes (at least 1) and DataLoader workers (0 = read in this process).
        epochs: epochs streamed, once with the loader alone and once through the device stage.
        batch_size: clips per batch (5 s crops at 32000 Hz, int16).
        progress: passed to :func:`shardkit.write.pack.pack`.

    Returns:
        a :class:`DemoReport`.
    """
    import torch

    from shardkit.device import AugmentConfig, DevicePipeline, MelConfig
    from shardkit.read import ShardDataset
    from shardkit.write.pack import PackOptions, pack

    if workers < 0 or epochs < 1 or batch_size < 1:
        raise UsageError(f"run_demo needs workers >= 0, epochs >= 1, batch_size >= 1; "
                         f"got {workers}, {epochs}, {batch_size}")
    workdir = Path(workdir)
    src = workdir / "corpus"
    csv_path = src / METADATA_NAME
    if not csv_path.exists():
        make_demo_corpus(src)
    rows = read_demo_metadata(csv_path)
    corpus_seconds = sum(sf.info(str(src / AUDIO_DIR / r["filename"])).duration for r in rows)

    out = workdir / "shards"
    options = PackOptions(sample_rate=32000, mode="recordings", max_seconds=60, shard_size="16MB")
    t0 = time.perf_counter()
    result = pack(src / AUDIO_DIR, out, metadata=csv_path, options=options, workers=max(1, workers),
                  overwrite=True, progress=progress)
    pack_seconds = time.perf_counter() - t0
    log.info("packed %.2f h of audio into %d shards in %.1fs", result.seconds / 3600, result.shards, pack_seconds)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    augment = AugmentConfig(gain_p=0.5, shift_p=0.5, mixup_p=0.5, mixup_label_mode="max", spec_p=0.5)
    frontend = DevicePipeline(MelConfig(sample_rate=32000), augment, seed=0).to(device)
    dataset = ShardDataset(out, batch_size=batch_size, crop_seconds=5.0, shuffle=True, seed=0)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=workers, pin_memory=device.type == "cuda"
    )

    def stream(with_mel: bool) -> tuple[int, float, Any]:
        clips, last = 0, None
        t_start = time.perf_counter()
        for epoch in range(epochs):
            dataset.set_epoch(epoch)      # workers are re-created each epoch and see the new epoch
            for batch in loader:
                audio = batch["audio"].to(device, non_blocking=True)
                labels = batch["labels"].to(device, non_blocking=True)  # the targets travel too (and mix)
                last = frontend(audio, labels)[0] if with_mel else audio
                clips += int(batch["valid"].sum())        # padding rows of the last step do not count
        if device.type == "cuda":
            torch.cuda.synchronize()
        return clips, time.perf_counter() - t_start, last

    with torch.inference_mode():
        clips, reader_s, last_audio = stream(with_mel=False)
        mel_clips, mel_s, last_mel = stream(with_mel=True)
        mel_compute = _time_mel(frontend, last_audio, device) if last_audio is not None else 0.0

    notes = []
    if result.rejects:
        notes.append(f"rejected {len(result.rejects)} source(s): {result.rejects[:3]}")
    report = DemoReport(
        corpus_files=len(rows),
        corpus_hours=corpus_seconds / 3600,
        pack_seconds=pack_seconds,
        pack_audio_hours_per_minute=(result.seconds / 3600) / (pack_seconds / 60) if pack_seconds > 0 else 0.0,
        shards=int(result.shards),
        shard_bytes=int(result.bytes),
        packed_hours=result.seconds / 3600,
        rejects=len(result.rejects),
        epochs=epochs,
        batch_size=batch_size,
        clips_streamed=clips,
        reader_clips_per_s=clips / reader_s if reader_s > 0 else 0.0,
        mel_clips_per_s=mel_clips / mel_s if mel_s > 0 else 0.0,
        mel_compute_clips_per_s=mel_compute,
        mel_shape=tuple(last_mel.shape) if last_mel is not None else (),
        device=str(device) if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})",
        notes=notes,
    )
    for line in report.lines():
        log.info("%s", line)
    return report


def _time_mel(frontend: Any, audio: Any, device: Any, repeats: int = 5) -> float:
    """Clips per second of ``frontend`` alone on a batch already on ``device``."""
    import torch

    frontend(audio)                       # warm-up (cuFFT plans, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        frontend(audio)                   # labels are optional: the stage returns (mel, None)
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    return repeats * audio.shape[0] / elapsed if elapsed > 0 else 0.0


__all__ = [
    "CSV_COLUMNS",
    "SPECIES",
    "DemoFile",
    "DemoReport",
    "label_names",
    "make_demo_corpus",
    "plan_demo_corpus",
    "read_demo_metadata",
    "run_demo",
    "synth_recording",
]
