"""The demo corpus: a small synthetic folder shaped like a BirdCLEF competition's ``train_audio``.

* :func:`plan_demo_corpus` — what the corpus holds (files, labels, formats, rates, durations), pure.
* :func:`make_demo_corpus` — writes ``train_audio/<label>/XC<id>.<ext>`` + ``train_metadata.csv``.
* :func:`read_demo_metadata`, :func:`label_names` — the CSV rows and the label vocabulary.

The audio comes from :func:`shardkit.synth.synth_recording`; the same seed writes the same bytes.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shardkit.errors import UsageError
from shardkit.synth import synth_recording, write_audio

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
_CALL_TYPES = ("['call']", "['song']", "['call', 'song']", "['flight call']", "['alarm call']")
_AUTHORS = ("Synth Recordist A", "Synth Recordist B", "Synth Recordist C", "Synth Recordist D")


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
    # one generator, drawn from in a fixed order (labels, layouts, durations, ids, then file by file):
    # reordering the draws changes every file of the corpus
    rng = np.random.default_rng([int(seed), 0xC0])
    label_ids = _plan_labels(rng, n_files, n_labels)
    layouts = _plan_layouts(rng, n_files)
    seconds = np.clip(rng.lognormal(mean=math.log(12.0), sigma=0.9, size=n_files), 3.0, 90.0)
    if n_files >= 4:
        seconds[int(np.argmax(seconds))] = rng.uniform(75.0, 90.0)
    xc_ids = (100000 + rng.choice(900000, size=n_files, replace=False)).tolist()
    names = label_names(n_labels)
    files = [_plan_file(rng, i, int(label_ids[i]), names, layouts[i], float(seconds[i]), int(xc_ids[i]))
             for i in range(n_files)]
    return sorted(files, key=lambda f: f.filename)


def _plan_labels(rng: np.random.Generator, n_files: int, n_labels: int) -> list[int]:
    """The primary label id of each file: each label once, then the rest drawn with weights ``1 / k**0.8``."""
    weights = 1.0 / np.arange(1, n_labels + 1) ** 0.8
    label_ids = list(range(min(n_files, n_labels)))
    label_ids += rng.choice(n_labels, size=n_files - len(label_ids), p=weights / weights.sum()).tolist()
    return rng.permutation(label_ids).tolist()


def _plan_layouts(rng: np.random.Generator, n_files: int) -> list[tuple[tuple[str, str, str], int, int]]:
    """Per file ((extension, format, subtype), sample rate in Hz, channels), shuffled independently."""
    n_other = min(n_files, len(_OTHER_FORMATS) * max(1, n_files // 12))
    formats = [_OTHER_FORMATS[i % len(_OTHER_FORMATS)] for i in range(n_other)]
    formats += [("ogg", "OGG", "VORBIS")] * (n_files - n_other)
    formats = [formats[i] for i in rng.permutation(n_files)]
    rates = [_RATE_CYCLE[i % len(_RATE_CYCLE)] for i in rng.permutation(n_files)]
    channels = [_CHANNEL_CYCLE[i % len(_CHANNEL_CYCLE)] for i in rng.permutation(n_files)]
    return list(zip(formats, rates, channels))


def _plan_file(rng: np.random.Generator, i: int, lid: int, names: list[str],
               layout: tuple[tuple[str, str, str], int, int], seconds: float, xc_id: int) -> DemoFile:
    """File ``i``: its secondary labels and the rest of its metadata, drawn from ``rng`` in a fixed order."""
    n_labels = len(names)
    secondary: list[int] = []
    if n_labels > 1 and rng.random() < 0.2:
        others = [j for j in range(n_labels) if j != lid]
        secondary = sorted(rng.choice(others, size=min(len(others), int(rng.integers(1, 3))),
                                      replace=False).tolist())
    (ext, fmt, subtype), sr, channels = layout
    if fmt == "FLAC" and i % 2:
        subtype = "PCM_24"
    return DemoFile(
        filename=f"{names[lid]}/XC{xc_id}.{ext}",
        primary_label=names[lid],
        label_id=lid,
        secondary_labels=tuple(names[j] for j in secondary),
        secondary_ids=tuple(secondary),
        format=fmt,
        subtype=subtype,
        sample_rate=sr,
        channels=channels,
        frames=int(round(seconds * sr)),
        seed=int(rng.integers(2**31)),
        xc_id=xc_id,
        call_type=_CALL_TYPES[int(rng.integers(len(_CALL_TYPES)))],
        latitude=round(float(rng.uniform(-40.0, 65.0)), 4),
        longitude=round(float(rng.uniform(-125.0, 150.0)), 4),
        rating=float(rng.integers(0, 11)) / 2,
        author=_AUTHORS[int(rng.integers(len(_AUTHORS)))],
    )


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
    files (the Ogg stream serial number of each file is its XC id). Files are written under a
    temporary name and renamed; the CSV is written last, so its presence marks a finished corpus.

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
    t0 = time.perf_counter()
    n_threads = workers if workers is not None else min(2, os.cpu_count() or 1)
    if n_threads > 1:
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            list(pool.map(lambda f: _write_file(audio_root, f), files))
    else:
        for f in files:
            _write_file(audio_root, f)
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


def _write_file(audio_root: Path, f: DemoFile) -> None:
    """Synthesise and encode one planned file (Ogg files get their XC id as stream serial number)."""
    audio = synth_recording(f.frames / f.sample_rate, f.sample_rate, f.label_id, f.seed, f.channels,
                            secondary_ids=f.secondary_ids)
    write_audio(audio_root / f.filename, audio, f.sample_rate, f.format, f.subtype,
                ogg_serial=f.xc_id if f.format == "OGG" else None)


def read_demo_metadata(csv_path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The rows of a ``train_metadata.csv``, as dicts of strings."""
    with open(csv_path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
