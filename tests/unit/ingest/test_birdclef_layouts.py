"""BirdCLEF 2023–2026 metadata files as Kaggle ships them (tests/fixtures/birdclef/YEAR/: the real headers,
a few real-looking rows each): ``train_metadata.csv`` (2023/2024) and ``train.csv`` (2025/2026, with
``collection``, numeric iNaturalist taxon labels, and in 2026 ``class_name``/``inat_taxon_id``), filenames
relative to ``train_audio/``. Each is packed as it is, from ``train_audio/`` or from the competition
folder, with tiny real ogg files made here."""

from __future__ import annotations

import ast
import csv
import shutil
from pathlib import Path

import pytest
from audio_factory import make_file

import shardkit
from shardkit.ingest.sources import discover

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "birdclef"
YEARS = {"2023": "train_metadata.csv", "2024": "train_metadata.csv", "2025": "train.csv", "2026": "train.csv"}


def _competition(tmp_path: Path, year: str) -> tuple[Path, Path, list[dict[str, str]]]:
    comp = tmp_path / f"birdclef-{year}"
    meta = comp / YEARS[year]
    comp.mkdir()
    shutil.copy(FIXTURES / year / YEARS[year], meta)
    with open(meta, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for n, row in enumerate(rows):
        make_file(comp / "train_audio" / row["filename"], 0.5 + 0.25 * n, 32000, 1, seed=n)
    return comp, meta, rows


@pytest.mark.parametrize("year", sorted(YEARS))
@pytest.mark.parametrize("from_root", [False, True])
def test_pack_takes_each_year_as_it_is(tmp_path, year, from_root):
    comp, meta, rows = _competition(tmp_path, year)
    src = comp if from_root else comp / "train_audio"
    out = tmp_path / "shards"
    r = shardkit.pack(src, out, metadata=meta)
    assert r.complete and r.samples == len(rows) and not r.rejects
    ss = shardkit.ShardSet.open(out)
    labels = {row["primary_label"] for row in rows}
    assert labels <= set(ss.vocabulary)
    for i in range(len(ss)):
        m = ss.read_meta(i)
        row = next(r for r in rows if r["filename"] == m["source"])  # relative to train_audio/ either way
        assert m["primary_label"] == row["primary_label"]
        assert ss.vocabulary[ss.label[i]] == row["primary_label"]
        assert "" not in m["secondary_labels"]
        extra = m["extra"]
        assert extra["url"] == row["url"] and extra["type"] == ast.literal_eval(row["type"])  # a list column
        if "collection" in row:
            assert extra["collection"] == row["collection"]
        if "inat_taxon_id" in row:
            assert extra["inat_taxon_id"] == int(row["inat_taxon_id"]) and extra["class_name"] == row["class_name"]


@pytest.mark.parametrize("from_root", [False, True])
def test_2021_filenames_without_their_folder_are_found_under_the_primary_label(tmp_path, from_root, caplog):
    """issue 22 item 19: BirdCLEF 2021's ``filename`` is ``XC109605.ogg``, the file at
    ``train_short_audio/<primary_label>/XC109605.ogg``: found there, and the pack says so (was: every row
    rejected as missing)."""
    comp = tmp_path / "birdclef-2021"
    comp.mkdir()
    meta = comp / "train_metadata.csv"
    shutil.copy(FIXTURES / "2021" / "train_metadata.csv", meta)
    with open(meta, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for n, row in enumerate(rows):
        make_file(comp / "train_short_audio" / row["primary_label"] / row["filename"], 0.5, 32000, 1, seed=n)
    src = comp if from_root else comp / "train_short_audio"
    with caplog.at_level("WARNING"):
        r = shardkit.pack(src, tmp_path / "shards", metadata=meta)
    assert r.complete and r.samples == len(rows) and not r.rejects
    said = [rec.getMessage() for rec in caplog.records if "<primary_label>/<filename>" in rec.getMessage()]
    assert len(said) == 1 and "3 rows" in said[0], [rec.getMessage() for rec in caplog.records]
    ss = shardkit.ShardSet.open(tmp_path / "shards")
    sources = {ss.read_meta(i)["source"]: ss.vocabulary[ss.label[i]] for i in range(len(ss))}
    assert sources == {f"{row['primary_label']}/{row['filename']}": row["primary_label"] for row in rows}


def test_numeric_labels_and_secondary_lists(tmp_path):
    comp, meta, _ = _competition(tmp_path, "2025")
    items, rejects = discover(comp / "train_audio", meta, order="sorted")
    assert not rejects
    by = {it.rel: it for it in items}
    assert by["1139490/CSA36385.ogg"].primary_label == "1139490" and by["1139490/CSA36385.ogg"].secondary_labels == ()
    assert by["21038/iNat297879.ogg"].secondary_labels == ("amakin1", "65448")
    assert by["amakin1/XC127316.ogg"].extra["latitude"] == -3.4667


def test_unquoted_numeric_secondary_labels(tmp_path):
    comp, meta, _ = _competition(tmp_path, "2026")
    text = meta.read_text().replace("['65448']", "[65448]")
    meta.write_text(text)
    items, rejects = discover(comp / "train_audio", meta)
    assert not rejects
    assert next(it for it in items if it.primary_label == "bkcdon").secondary_labels == ("65448",)
