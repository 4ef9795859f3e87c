"""The demo corpus: deterministic, decodable to what was planned, BirdCLEF-shaped metadata."""

from __future__ import annotations

import ast
import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from shardkit.demo import (
    CSV_COLUMNS,
    label_names,
    make_demo_corpus,
    plan_demo_corpus,
    read_demo_metadata,
    synth_recording,
)
from shardkit.errors import UsageError
from shardkit.synth import _ogg_crc

N_FILES = 12  # big enough for every format, rate and channel count; small enough to be fast


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_corpus(tmp_path_factory.mktemp("corpus"), n_files=N_FILES, seed=7)


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_corpus_is_byte_identical_for_the_same_seed(corpus: Path, tmp_path: Path) -> None:
    again = make_demo_corpus(tmp_path / "again", n_files=N_FILES, seed=7, workers=1)
    assert _digests(corpus.parent) == _digests(again.parent)
    other = plan_demo_corpus(n_files=N_FILES, seed=8)
    assert other != plan_demo_corpus(n_files=N_FILES, seed=7)


def test_no_temporary_files_left(corpus: Path) -> None:
    assert not [p for p in corpus.parent.rglob("*.tmp")]


def test_files_decode_to_the_planned_rate_channels_and_duration(corpus: Path) -> None:
    plan = plan_demo_corpus(n_files=N_FILES, seed=7)
    audio_root = corpus.parent / "train_audio"
    assert sorted(str(p.relative_to(audio_root)) for p in audio_root.rglob("*.*")) == [f.filename for f in plan]
    for f in plan:
        path = audio_root / f.filename
        info = sf.info(str(path))
        assert (info.format, info.subtype) == (f.format, f.subtype), f.filename
        assert (info.samplerate, info.channels, info.frames) == (f.sample_rate, f.channels, f.frames), f.filename
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        assert data.shape == (f.frames, f.channels) and rate == f.sample_rate
        assert 3.0 <= f.seconds <= 90.0
        assert np.abs(data).max() < 1.0 and np.sqrt(np.mean(data**2)) > 1e-3  # not silent, not clipped
        if f.format in ("WAV", "FLAC"):                                        # lossless: the synth exactly
            expected = synth_recording(f.frames / f.sample_rate, f.sample_rate, f.label_id, f.seed,
                                       f.channels, secondary_ids=f.secondary_ids)
            assert np.abs(data - expected).max() <= 1.0 / 32768 + 1e-7


def test_corpus_covers_every_decoder_rate_and_layout() -> None:
    plan = plan_demo_corpus(n_files=N_FILES, seed=7)
    assert {f.format for f in plan} == {"OGG", "FLAC", "MP3", "WAV"}
    assert sum(f.format == "OGG" for f in plan) > N_FILES // 2
    assert {f.sample_rate for f in plan} == {22050, 32000, 44100, 48000}
    assert {f.channels for f in plan} == {1, 2}
    assert max(f.seconds for f in plan) >= 75.0             # longer than the demo's max_seconds=60
    assert {f.primary_label for f in plan} == set(label_names(6))
    default = plan_demo_corpus()
    assert len(default) == 48
    assert np.median([f.seconds for f in default]) < 20     # skewed short, like BirdCLEF
    assert len({f.xc_id for f in default}) == 48


def test_metadata_csv_is_birdclef_shaped(corpus: Path) -> None:
    with open(corpus, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert tuple(header) == CSV_COLUMNS
    rows = read_demo_metadata(corpus)
    assert len(rows) == N_FILES
    vocabulary = set(label_names(6))
    n_secondary = 0
    for row in rows:
        assert row["primary_label"] in vocabulary
        secondary = ast.literal_eval(row["secondary_labels"])
        assert isinstance(secondary, list) and set(secondary) <= vocabulary - {row["primary_label"]}
        n_secondary += bool(secondary)
        assert isinstance(ast.literal_eval(row["type"]), list)
        assert row["filename"].startswith(row["primary_label"] + "/XC")
        assert (corpus.parent / "train_audio" / row["filename"]).is_file()
        assert -90 <= float(row["latitude"]) <= 90 and -180 <= float(row["longitude"]) <= 180
        assert 0.0 <= float(row["rating"]) <= 5.0
        assert row["scientific_name"] and row["common_name"] and row["url"]
    assert 0 < n_secondary < N_FILES // 2                  # mostly "[]"
    assert [r["filename"] for r in rows] == sorted(r["filename"] for r in rows)


def test_synth_recording_is_deterministic_and_label_specific() -> None:
    a = synth_recording(4.0, 32000, label_id=1, seed=3)
    assert a.dtype == np.float32 and a.shape == (128000, 1)
    assert np.array_equal(a, synth_recording(4.0, 32000, label_id=1, seed=3))
    assert not np.array_equal(a, synth_recording(4.0, 32000, label_id=1, seed=4))
    stereo = synth_recording(2.5, 22050, label_id=2, seed=0, channels=2)
    assert stereo.shape == (55125, 2) and not np.array_equal(stereo[:, 0], stereo[:, 1])

    def centroid(x: np.ndarray) -> float:
        spectrum = np.abs(np.fft.rfft(x[:, 0]))
        freqs = np.fft.rfftfreq(len(x), 1 / 32000)
        band = freqs > 300                                 # above the background rumble
        return float((spectrum[band] * freqs[band]).sum() / spectrum[band].sum())

    centroids = [centroid(synth_recording(10.0, 32000, label_id=k, seed=0)) for k in range(6)]
    assert len({round(c, -2) for c in centroids}) == 6     # six audibly different species
    with pytest.raises(UsageError):
        synth_recording(1.0, 32000, label_id=0, seed=0, channels=3)


def test_ogg_crc_matches_libsndfile(tmp_path: Path) -> None:
    path = tmp_path / "x.ogg"
    sf.write(str(path), np.zeros((1000, 1), dtype=np.float32), 32000, format="OGG", subtype="VORBIS")
    data = path.read_bytes()
    n_segments = data[26]
    page = bytearray(data[: 27 + n_segments + sum(data[27 : 27 + n_segments])])
    stored = int.from_bytes(page[22:26], "little")
    page[22:26] = b"\0\0\0\0"
    assert _ogg_crc(bytes(page)) == stored


def test_demo_package_keeps_its_public_names() -> None:
    import shardkit.demo
    import shardkit.synth

    assert set(shardkit.demo.__all__) == {
        "CSV_COLUMNS", "SPECIES", "DemoFile", "DemoReport", "label_names", "make_demo_corpus", "plan_demo_corpus",
        "read_demo_metadata", "run_demo", "synth_recording", "default_workdir",
    }
    assert shardkit.demo.synth_recording is shardkit.synth.synth_recording
