"""Metadata columns typed one type per column, recorded in a version-4 manifest, and rejects in their own
file (issue 22 items 20, 23; docs/format.md §5.4), on real Ogg Vorbis sources: a ``"-"`` in ``rating`` and a
mix of ``4`` and ``4.5`` no longer make a set that Hugging Face ``datasets`` refuses; list-looking columns
(BirdCLEF's ``type``) are stored as lists of strings; a set whose columns were clean (no list column) and
that has no rejects keeps its version-2 bytes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from audio_factory import make_corpus

import shardkit
from shardkit.format import COLUMNS_VERSION, FORMAT_VERSION, REJECTS_NAME, Manifest
from shardkit.read.columns import select_rows


def _rewrite(csv_path: Path, out: Path, change) -> Path:
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for n, row in enumerate(rows):
        change(n, row)
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("typed")
    csv_path = make_corpus(root, n_files=8, seconds=(1.0, 2.0), sample_rate=32000)

    def messy(n, row):  # BirdCLEF's "-" ratings, whole and half ratings, a missing file
        row["rating"] = "-" if n == 2 else ("4" if n % 2 else "4.5")
        row["count"] = str(n)
        if n == 5:
            row["filename"] = "amecro/gone.ogg"

    def plain(n, row):  # no list-looking column: BirdCLEF's `type` as plain text
        row["type"] = "song"

    messy_csv = _rewrite(csv_path, root / "messy.csv", messy)
    return root / "audio", _rewrite(csv_path, root / "plain.csv", plain), messy_csv


def test_mixed_columns_get_one_type_recorded_in_a_version_4_manifest(corpus, tmp_path):
    audio, _, messy = corpus
    r = shardkit.pack(audio, tmp_path / "s", metadata=messy)
    doc = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert doc["format_version"] == COLUMNS_VERSION and "rejects" not in doc
    assert doc["columns"]["rating"] == "float" and doc["columns"]["count"] == "int"
    assert doc["rejects_file"]["name"] == REJECTS_NAME and doc["rejects_file"]["count"] == 1
    assert [x.file for x in r.rejects] == ["amecro/gone.ogg"]
    m = Manifest.load(tmp_path / "s")
    assert m.rejects and m.rejects[0]["file"] == "amecro/gone.ogg" and m.reject_count == 1
    ratings = {type(shardkit.read_sample(tmp_path / "s", e.key).meta["extra"]["rating"])
               for e in shardkit.list_samples(tmp_path / "s")}
    assert ratings == {float, type(None)}
    assert shardkit.verify(tmp_path / "s").ok and "1 rejected" in _cli_info(tmp_path / "s")


def _cli_info(path: Path) -> str:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "shardkit_cli", "info", str(path)], capture_output=True,
                          text=True, check=True).stdout


def _load(datasets, folder: Path, tmp_path: Path):
    from shardkit.read.hf import hf_features

    tars = sorted(str(p) for p in folder.glob("shard-*.tar"))
    assert len(tars) > 1
    return datasets.load_dataset("webdataset", data_files={"train": tars}, split="train", features=hf_features(folder),
                                 cache_dir=str(tmp_path / "hf-cache"))


def test_hugging_face_datasets_loads_the_set(corpus, tmp_path):
    datasets = pytest.importorskip("datasets")
    audio, csv_path, messy = corpus
    shardkit.pack(audio, tmp_path / "s", metadata=messy, options=shardkit.PackOptions(shard_size="64KB"))
    ds = _load(datasets, tmp_path / "s", tmp_path)
    assert len(ds) == 7
    ratings = sorted((row["mp"]["extra"]["rating"] for row in ds), key=lambda x: (x is None, x or 0))
    assert ratings[-1] is None and all(isinstance(x, float) for x in ratings[:-1])
    assert {row["mp"]["extra"]["count"] for row in ds} == {0, 1, 2, 3, 4, 6, 7}
    assert all(row["wav"][:4] == b"RIFF" for row in ds)
    shardkit.pack(audio, tmp_path / "clean", metadata=csv_path, options=shardkit.PackOptions(shard_size="64KB"))
    assert len(_load(datasets, tmp_path / "clean", tmp_path)) == 8  # a version-2 set: types read from samples


def test_a_clean_set_keeps_its_version_2_manifest(corpus, tmp_path):
    audio, csv_path, _ = corpus
    shardkit.pack(audio, tmp_path / "s", metadata=csv_path)
    doc = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert doc["format_version"] == FORMAT_VERSION and doc["rejects"] == [] and "columns" not in doc
    assert not (tmp_path / "s" / REJECTS_NAME).exists()


def test_overwrite_knows_the_rejects_file_as_its_own(corpus, tmp_path):
    audio, csv_path, messy = corpus
    shardkit.pack(audio, tmp_path / "s", metadata=messy)
    r = shardkit.pack(audio, tmp_path / "s", metadata=csv_path, overwrite=True)
    assert r.complete and not (tmp_path / "s" / REJECTS_NAME).exists()


def test_compact_keeps_the_column_types_and_the_rejects(corpus, tmp_path):
    audio, _, messy = corpus
    shardkit.pack(audio, tmp_path / "s", metadata=messy)
    shardkit.compact(tmp_path / "s", tmp_path / "c")
    m = Manifest.load(tmp_path / "c")
    assert m.format_version == COLUMNS_VERSION and m.columns == Manifest.load(tmp_path / "s").columns
    assert [r["file"] for r in m.rejects] == ["amecro/gone.ogg"]


def test_kaggle_prepare_ships_the_rejects_file(corpus, tmp_path):
    from shardkit.kaggle import prepare

    audio, _, messy = corpus
    shardkit.pack(audio, tmp_path / "s", metadata=messy)
    plan = prepare(tmp_path / "s", "tester/typed-shards", "Typed shards v1", "CC0-1.0", out=tmp_path / "up")
    assert REJECTS_NAME in [f.name for f in plan.files]
    assert (tmp_path / "up" / REJECTS_NAME).read_bytes() == (tmp_path / "s" / REJECTS_NAME).read_bytes()
    assert Manifest.load(tmp_path / "up").reject_count == 1


def test_verify_checks_the_rejects_file(corpus, tmp_path):
    audio, _, messy = corpus
    shardkit.pack(audio, tmp_path / "s", metadata=messy)
    path = tmp_path / "s" / REJECTS_NAME
    path.write_bytes(path.read_bytes().replace(b"gone", b"lost"))
    report = shardkit.verify(tmp_path / "s")
    assert not report.ok and any(REJECTS_NAME in str(p) and "sha256" in str(p) for p in report.problems)
    assert len(shardkit.ShardDataset(tmp_path / "s", batch_size=2, crop_seconds=0.5)) > 0  # still reads


def test_a_version_4_manifest_without_columns_keeps_its_rejects_inline(corpus, tmp_path):
    """Version 4 also carries label layers (the labels work): a version-4 manifest without ``columns`` has its
    rejects inline as before, and reads and writes them so."""
    audio, csv_path, _ = corpus
    shardkit.pack(audio, tmp_path / "s", metadata=csv_path)
    doc = json.loads((tmp_path / "s" / "manifest.json").read_text())
    doc.update(format_version=COLUMNS_VERSION, rejects=[{"file": "x.ogg", "row": 9, "reason": "missing"}])
    m = Manifest.from_json(json.dumps(doc).encode())
    assert m.columns is None and not m.typed and m.reject_count == 1
    again = json.loads(m.to_json())
    assert again["rejects"] == doc["rejects"] and "columns" not in again and "rejects_file" not in again


# -- list columns (BirdCLEF's ``type``: "['call', 'flight call']") -------------------------------------------

TYPES = ["['call', 'flight call']", "['song']", "[]", "", '["call"]', "['alarm call', 'song']", "['song']",
         "['call']"]


@pytest.fixture(scope="module")
def birdclef(corpus, tmp_path_factory):
    """The corpus's BirdCLEF-like CSV (make_corpus) with varied ``type`` cells, an empty one and JSON quotes."""
    audio, plain, _ = corpus
    root = tmp_path_factory.mktemp("lists")

    def lists(n, row):
        row["type"] = TYPES[n]

    return audio, _rewrite(plain, root / "lists.csv", lists)


def _type_of(folder: Path) -> dict[str, list[str] | None]:
    return {e.source: shardkit.read_sample(folder, e.key).meta["extra"]["type"] for e in shardkit.list_samples(folder)}


def test_a_list_looking_column_is_stored_as_lists_in_a_version_4_set(birdclef, tmp_path):
    audio, lists = birdclef
    r = shardkit.pack(audio, tmp_path / "s", metadata=lists)
    assert r.complete and not r.rejects
    doc = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert doc["format_version"] == COLUMNS_VERSION and doc["columns"]["type"] == "list"
    assert doc["columns"]["author"] == "str" and doc["rejects_file"] is None
    assert not (tmp_path / "s" / REJECTS_NAME).exists()
    got = _type_of(tmp_path / "s")
    assert sorted(map(str, got.values())) == sorted(map(str, [["call", "flight call"], ["song"], [], None, ["call"],
                                                             ["alarm call", "song"], ["song"], ["call"]]))
    table = json.loads((tmp_path / "s" / "sources.json").read_text())["sources"]
    assert {k: v["extra"]["type"] for k, v in table.items()} == got
    assert shardkit.verify(tmp_path / "s").ok
    again = shardkit.pack(audio, tmp_path / "t", metadata=lists)  # the same inputs, the same bytes
    assert again.complete and all((tmp_path / "t" / p.name).read_bytes() == p.read_bytes()
                                  for p in (tmp_path / "s").glob("shard-*"))


def test_one_malformed_list_cell_makes_the_column_text(birdclef, tmp_path):
    audio, lists = birdclef

    def broken(n, row):
        if n == 1:
            row["type"] = "['song'"  # not a list literal: the column stays text, nothing is refused

    bad = _rewrite(lists, tmp_path / "broken.csv", broken)
    r = shardkit.pack(audio, tmp_path / "s", metadata=bad)
    assert r.complete and not r.rejects and r.samples == len(TYPES)
    doc = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert doc["format_version"] == FORMAT_VERSION and "columns" not in doc  # text as before: version 2 bytes
    assert set(_type_of(tmp_path / "s").values()) == {"['call', 'flight call']", "['song']", "['song'", "[]", None,
                                                       '["call"]', "['alarm call', 'song']", "['call']"}


def test_sample_columns_and_where_see_the_lists(birdclef, tmp_path):
    audio, lists = birdclef
    shardkit.pack(audio, tmp_path / "s", metadata=lists)
    cols = shardkit.sample_columns(tmp_path / "s")
    kinds = cols["type"]
    assert kinds.dtype == object and all(isinstance(t, tuple) for t in kinds)
    assert sorted(kinds.tolist()) == sorted([("call", "flight call"), ("song",), (), (), ("call",),
                                             ("alarm call", "song"), ("song",), ("call",)])
    ss = shardkit.ShardSet.open(tmp_path / "s")
    rows = select_rows(ss, where=lambda c: np.array(["call" in t for t in c["type"]]))
    assert sorted(kinds[rows].tolist()) == [("call",), ("call",), ("call", "flight call")]


def test_hugging_face_datasets_loads_a_set_with_a_list_column(birdclef, tmp_path):
    datasets = pytest.importorskip("datasets")
    audio, lists = birdclef
    shardkit.pack(audio, tmp_path / "s", metadata=lists, options=shardkit.PackOptions(shard_size="64KB"))
    from shardkit.read.hf import hf_features

    assert hf_features(tmp_path / "s")["mp"]["extra"]["type"] == datasets.Sequence(datasets.Value("string"))
    ds = _load(datasets, tmp_path / "s", tmp_path)
    assert len(ds) == len(TYPES)
    got = sorted(map(str, (row["mp"]["extra"]["type"] for row in ds)))
    assert got == sorted(map(str, _type_of(tmp_path / "s").values()))
    assert ["alarm call", "song"] in [row["mp"]["extra"]["type"] for row in ds]
