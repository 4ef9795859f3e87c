"""Label layers end to end on real encoded audio (issue 21, docs/labels.md): unlabelled "soundscapes" (Ogg
Vorbis, FLAC) packed as recordings and as 5 s segments; layers added through the CLI and the library; read
through real DataLoader workers, 2 gloo ranks and a mid-epoch resume."""

from __future__ import annotations

import csv
import json
import os
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as tmp
from audio_factory import make_file
from layer_reference import window_targets
from procs import cli, free_port
from torch.utils.data import DataLoader

import shardkit
import shardkit.labels
from shardkit.errors import MetadataError

#: (file, seconds) of the unlabelled soundscapes
SCAPES = [("S01_a.ogg", 17.0), ("S02_b.flac", 11.5), ("S03_c.ogg", 4.0), ("S04_d.ogg", 23.2)]
CLASSES = ["amecro", "barswa", "grewar3"]


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """{"rec": recordings set, "seg": 5 s segments set (tail pad)} of the soundscapes, 32 kHz wav16."""
    root = tmp_path_factory.mktemp("labels")
    for i, (name, seconds) in enumerate(SCAPES):
        make_file(root / "scapes" / name, seconds, 32000, 1 + i % 2, seed=10 + i)
    out = {}
    for mode in ("recordings", "segments"):
        out[mode[:3]] = root / mode
        shardkit.pack(root / "scapes", out[mode[:3]], options=shardkit.PackOptions(mode=mode, shard_size="600KB"))
    return out


@pytest.fixture(autouse=True)
def _parents_found(sets, monkeypatch):
    """New versions are written in each test's own folder: the parents are found through the search path."""
    monkeypatch.setenv("SHARDKIT_SEARCH_PATH", str(sets["rec"].parent))


def _probs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, len(CLASSES))).round(4)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _key_table(ss, tmp_path, skip=2):
    """A CSV with a row for every key but the first ``skip``: {key: probs}."""
    keys = sorted(ss.keys)[skip:]
    probs = _probs(len(keys))
    _write_csv(tmp_path / "pseudo.csv", ["key", *CLASSES], [[k, *p] for k, p in zip(keys, probs.tolist())])
    return dict(zip(keys, probs))


def _check_rows(batches, table, classes):
    seen = []
    for b in batches:
        for row, key in enumerate(b["keys"]):
            if not b["valid"][row]:
                continue
            seen.append(key)
            if key in table:
                assert b["targets_mask"][row]
                got = b["targets"][row].numpy()
                np.testing.assert_array_equal(got, table[key].astype(np.float16).astype(np.float32)[
                    [CLASSES.index(c) for c in classes]])
            else:
                assert not b["targets_mask"][row] and not b["targets"][row].any()
    return seen


def test_segments_targets_equal_the_table_through_workers(sets, tmp_path):
    ss = shardkit.ShardSet.open(sets["seg"])
    table = _key_table(ss, tmp_path)
    new = tmp_path / "seg-pseudo"
    out = cli("labels", "add", sets["seg"], new, tmp_path / "pseudo.csv", "--name", "pseudo")
    assert f"{len(table)} rows" in out.stdout
    ds = shardkit.ShardDataset(new, targets="pseudo", batch_size=3, seed=4)
    assert ds.classes == CLASSES  # an unlabelled set: the layer's classes
    seen = _check_rows(DataLoader(ds, batch_size=None, num_workers=2), table, CLASSES)
    assert sorted(seen) == sorted(ss.keys)
    # the dataset's class order (a subset, reordered) and a resume half-way through the epoch
    ds = shardkit.ShardDataset(new, targets="pseudo", batch_size=2, seed=4, classes=["grewar3", "amecro"])
    full = [(b["keys"], b["targets"].clone()) for b in ds]
    ds.load_state_dict(ds.state_dict(3))
    rest = list(DataLoader(ds, batch_size=None, num_workers=2))
    assert [b["keys"] for b in rest] == [k for k, _ in full[3:]]
    assert all(torch.equal(b["targets"], t) for b, (_, t) in zip(rest, full[3:]))
    _check_rows(rest, table, ["grewar3", "amecro"])


def _ddp_rank(rank, world, port, path, outdir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        ds = shardkit.ShardDataset(path, targets="pseudo", batch_size=2, seed=2)
        rows = {}
        for b in DataLoader(ds, batch_size=None, num_workers=2):
            dist.all_reduce(b["targets_mask"].sum().reshape(1).float())  # every rank takes the same steps
            for row, key in enumerate(b["keys"]):
                if b["valid"][row]:
                    rows[key] = [bool(b["targets_mask"][row]), b["targets"][row].tolist()]
        Path(outdir, f"rank{rank}.json").write_text(json.dumps(rows))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(180)
def test_segments_targets_through_two_gloo_ranks(sets, tmp_path):
    ss = shardkit.ShardSet.open(sets["seg"])
    table = _key_table(ss, tmp_path, skip=1)
    shardkit.add_labels(sets["seg"], tmp_path / "new", name="pseudo", table=tmp_path / "pseudo.csv")
    tmp.spawn(_ddp_rank, args=(2, free_port(), str(tmp_path / "new"), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert not set(ranks[0]) & set(ranks[1]) and set(ranks[0]) | set(ranks[1]) == set(ss.keys)
    for key, (mask, targets) in {**ranks[0], **ranks[1]}.items():
        assert mask == (key in table)
        expected = table[key].astype(np.float16).astype(np.float32) if mask else np.zeros(3)
        np.testing.assert_array_equal(np.float32(targets), expected)


@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_random_crops_get_the_combination_of_their_windows(sets, tmp_path, reduce):
    ss = shardkit.ShardSet.open(sets["rec"])
    sources, starts = [], []
    for src in ss.source_names:  # 5 s windows every 2.5 s; one source left out, one window missing
        end = max(float(ss.start_seconds[i] + ss.frames[i] / ss.sample_rate) for i in range(len(ss))
                  if ss.source_names[ss.source_id[i]] == src)
        for w in range(int(np.ceil(end / 2.5))):
            if not src.startswith("S03") and (src, w) != (ss.source_names[0], 2):
                sources.append(src)
                starts.append(w * 2.5)
    probs = _probs(len(sources), seed=1)
    shardkit.add_labels(sets["rec"], tmp_path / "w", name="win", probs=probs, classes=CLASSES, sources=sources,
                        start_seconds=starts, window_seconds=5.0, hop_seconds=2.5)
    layer = shardkit.ShardSet.open(tmp_path / "w").read_layer("win")
    ds = shardkit.ShardDataset(tmp_path / "w", targets="win", targets_reduce=reduce, crop_seconds=3.0,
                               crops_per_recording=3, batch_size=4, seed=7)
    checked = 0
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        for b in DataLoader(ds, batch_size=None, num_workers=2):
            for row in range(len(b["keys"])):
                i = int(b["index"][row])
                a = float(b["start_seconds"][row])
                end = min(a + 3.0, float(ss.start_seconds[i] + ss.frames[i] / ss.sample_rate))
                ref = window_targets(layer, b["source"][row], a, end, reduce)
                assert bool(b["targets_mask"][row]) == (ref is not None)
                if ref is not None:
                    np.testing.assert_allclose(b["targets"][row].numpy(), ref, rtol=1e-5, atol=1e-6)
                checked += 1
    assert checked >= 2 * 3 * len(ss)


def test_a_birdclef_submission_from_a_grid_pass_attaches_and_reads_back(sets, tmp_path):
    grid = shardkit.ShardDataset(sets["rec"], crop_seconds=5, crops="grid", shuffle=False, batch_size=4)
    rows, seen = [], []
    for b in DataLoader(grid, batch_size=None, num_workers=2):
        ids = shardkit.labels.row_ids(b)
        seen += list(zip(b["source"], b["start_seconds"].tolist()))
        rows += [[rid, *p] for rid, p in zip(ids, _probs(len(ids), seed=len(rows)).tolist())]
    ends = {name: seconds for name, seconds in SCAPES}
    assert len(rows) == sum(int(np.ceil(s / 5)) for s in ends.values())  # every window, the tail padded
    assert [r[0] for r in rows if r[0].startswith("S01_a")] == ["S01_a_5", "S01_a_10", "S01_a_15", "S01_a_20"]
    assert [st for src, st in seen if src == "S01_a.ogg"] == [0.0, 5.0, 10.0, 15.0]  # in order, per recording
    _write_csv(tmp_path / "submission.csv", ["row_id", *CLASSES], rows)
    cli("labels", "add", sets["rec"], tmp_path / "pl", tmp_path / "submission.csv", "--name", "pl",
        "--window-seconds", "5")
    back = shardkit.ShardDataset(tmp_path / "pl", crop_seconds=5, crops="grid", shuffle=False, batch_size=5,
                                 targets="pl", tail="pad")
    expected = {r[0]: np.float16(r[1:]).astype(np.float32) for r in rows}
    got = {}
    for b in back:
        assert b["targets_mask"].all()
        got.update(zip(shardkit.labels.row_ids(b), b["targets"].numpy()))
    assert got.keys() == expected.keys()
    for rid, v in expected.items():
        # the padded last window covers less audio than 5 s: still one window, its row as it is
        np.testing.assert_array_equal(got[rid], v)
    dropped = shardkit.ShardDataset(sets["rec"], crop_seconds=5, crops="grid", shuffle=False, tail="drop")
    assert dropped.num_items == sum(int(s // 5) for s in ends.values())


def test_a_layer_writes_little_keeps_the_audio_and_versions_know_it(sets, tmp_path):
    ss = shardkit.ShardSet.open(sets["seg"])
    _key_table(ss, tmp_path)
    new = tmp_path / "new"
    r = shardkit.add_labels(sets["seg"], new, name="pseudo", table=tmp_path / "pseudo.csv", note="round 1")
    parent = shardkit.format.Manifest.load(sets["seg"])
    assert not list(new.glob("*.tar")) and not list(new.glob("*.index"))
    assert r.bytes_written == sum(p.stat().st_size for p in new.iterdir())
    assert r.bytes_written < 0.01 * parent.totals["bytes"]
    a = {b_key: audio for b in shardkit.ShardDataset(sets["seg"], batch_size=4, shuffle=False)
         for b_key, audio in zip(b["keys"], b["audio"])}
    for b in shardkit.ShardDataset(new, batch_size=4, shuffle=False, targets="pseudo"):
        for key, audio in zip(b["keys"], b["audio"]):
            assert torch.equal(audio, a[key])
    log = cli("log", new).stdout.splitlines()
    assert log[-1].startswith(r.version_id) and "round 1" in log[-1] and "layers: pseudo" in log[-1]
    diff = cli("diff", sets["seg"], new).stdout
    assert "layers added: pseudo" in diff
    assert cli("verify", new).returncode == 0
    assert cli("labels", "ls", new).stdout.startswith(f"pseudo\tsamples\t{len(ss) - 2} rows\t3 classes")
    rm = cli("labels", "rm", new, tmp_path / "rm", "--name", "pseudo").stdout
    assert f"version {parent.version_id}" in rm  # the layer-free content again
    assert shardkit.list_labels(tmp_path / "rm") == []
    compacted = shardkit.compact(new, tmp_path / "compact")
    assert compacted.version_id == r.version_id and shardkit.verify(tmp_path / "compact").ok
    assert [e.name for e in shardkit.list_labels(tmp_path / "compact")] == ["pseudo"]
    raw = bytearray((new / "labels-pseudo.layer").read_bytes())
    raw[len(raw) // 2] ^= 0x10
    (new / "labels-pseudo.layer").write_bytes(bytes(raw))
    bad = cli("verify", new, ok=False)
    assert bad.returncode == 4 and "labels-pseudo.layer" in bad.stdout and "sha256" in bad.stdout


def test_a_changed_layer_shows_its_mean_change_per_class(sets, tmp_path):
    ss = shardkit.ShardSet.open(sets["seg"])
    keys = sorted(ss.keys)
    one = shardkit.add_labels(sets["seg"], tmp_path / "one", name="p", keys=keys, probs=np.full((len(keys), 2), 0.5),
                              classes=["amecro", "barswa"]).out
    two = shardkit.add_labels(one, tmp_path / "two", name="p", keys=keys[1:], replace=True,
                              probs=np.tile([0.75, 0.5], (len(keys) - 1, 1)), classes=["amecro", "barswa"]).out
    d = shardkit.diff(one, two).layers
    assert d["changed"]["p"] == {"rows_added": 0, "rows_removed": 1, "rows_common": len(keys) - 1,
                                 "mean_change": {"amecro": 0.25, "barswa": 0.0}}
    assert "layer p changed: 0 rows added, 1 removed" in cli("diff", one, two).stdout


@pytest.mark.parametrize("rows, what", [
    ([["nokey-0000", 0.1, 0.2, 0.3]], r"row 2, column 'key': 'nokey-0000' names no sample"),
    ([["KEY0", 0.1, 0.2, 0.3]], r"row 2: duplicates row 1"),
    ([["KEY1", 0.1, "nan", 0.3]], r"row 2, column 'barswa': is NaN"),
    ([["KEY1", 0.1, 1.5, 0.3]], r"row 2, column 'barswa': 1.5 is outside \[0, 1\]"),
    ([["KEY1", 0.1, 0.2, "loud"]], r"row 2, column 'grewar3': 'loud' is not a number"),
])
def test_bad_tables_name_row_and_column_and_write_nothing(sets, tmp_path, rows, what):
    keys = sorted(shardkit.ShardSet.open(sets["seg"]).keys)
    fix = [[{"KEY0": keys[0], "KEY1": keys[1]}.get(c, c) for c in r] for r in rows]
    table = _write_csv(tmp_path / "bad.csv", ["key", *CLASSES], [[keys[0], 0.1, 0.2, 0.3], *fix])
    out = cli("labels", "add", sets["seg"], tmp_path / "new", table, "--name", "x", ok=False)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    message = " ".join(out.stderr.split())
    assert "bad.csv" in message and "nothing was written" in message
    import re
    assert re.search(what, message), message
    assert not (tmp_path / "new").exists()
    with pytest.raises(MetadataError, match=what):
        shardkit.add_labels(sets["seg"], tmp_path / "new", name="x", table=table)
    skipped = cli("labels", "add", sets["seg"], tmp_path / "new", table, "--name", "x", "--on-error", "skip")
    assert "1 bad rows skipped" in skipped.stderr
    assert shardkit.list_labels(tmp_path / "new")[0].rows == 1


def test_parquet_tables_and_source_start_rows_of_segments(sets, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    ss = shardkit.ShardSet.open(sets["seg"])
    src = [ss.source_names[s] for s in ss.source_id.tolist()]
    probs = _probs(len(ss), seed=3)
    pq.write_table(pa.table({"source": src, "start_seconds": ss.start_seconds.tolist(),
                             **{c: probs[:, j] for j, c in enumerate(CLASSES)}}), tmp_path / "t.parquet")
    shardkit.add_labels(sets["seg"], tmp_path / "new", name="p", table=tmp_path / "t.parquet")
    table = {k: p for k, p in zip(ss.keys, probs)}
    seen = _check_rows(shardkit.ShardDataset(tmp_path / "new", targets="p", batch_size=4), table, CLASSES)
    assert sorted(seen) == sorted(ss.keys)


def test_classes_on_an_unlabelled_set_read(sets):
    ds = shardkit.ShardDataset(sets["rec"], crop_seconds=2.0, classes=CLASSES, batch_size=4)
    batches = list(ds)
    assert sum(len(b["keys"]) for b in batches) >= len(SCAPES)
    assert all(b["labels"].shape[1] == 3 and not b["labels"].any() for b in batches)


def test_update_keeps_the_rows_of_unchanged_audio(tmp_path):
    from versions_factory import corpus, options, season

    csv_path = corpus(tmp_path)
    shardkit.pack(tmp_path / "audio", tmp_path / "sets" / "v1", metadata=csv_path, options=options())
    with shardkit.ShardSet.open(tmp_path / "sets" / "v1") as ss:
        keys = list(ss.keys)
        sources = [ss.source_names[s] for s in ss.source_id.tolist()]
    shardkit.add_labels(tmp_path / "sets" / "v1", tmp_path / "sets" / "v1-pl", name="pl", keys=keys,
                        probs=np.full((len(keys), 1), 0.5), classes=["amecro"])
    kinds = season(tmp_path, csv_path)
    r = shardkit.update(tmp_path / "audio", tmp_path / "sets" / "v1-pl", tmp_path / "sets" / "v2", metadata=csv_path)
    (layer,) = shardkit.list_labels(r.out)
    gone = {k for k, s in zip(keys, sources) if s in kinds["removed"] + kinds["changed"]}
    assert gone and layer.rows == len(keys) - len(gone)
    assert shardkit.verify(r.out).ok
    ds = shardkit.ShardDataset(r.out, targets="pl", crop_seconds=1.0, batch_size=64, shuffle=False)
    (b,) = list(ds)
    for key, source, mask in zip(b["keys"], b["source"], b["targets_mask"].tolist()):
        assert mask == (key in keys and source not in kinds["changed"] + kinds["added"])


def test_mel_u8_grid_windows_round_trip(sets, tmp_path):
    """A log-mel's hop need not divide 5 s: grid windows start at round(k × 312.5) frames, named and matched
    by their nominal start k × 5 s."""
    mel = tmp_path / "sets" / "mel"
    shardkit.pack(sets["rec"].parent / "scapes", mel, options=shardkit.PackOptions(codec="mel-u8"))
    grid = shardkit.ShardDataset(mel, crop_seconds=5, crops="grid", shuffle=False, batch_size=64)
    (b,) = list(grid)
    keep = b["valid"].numpy()
    sources = [s for s, ok in zip(b["source"], keep) if ok]
    starts = b["start_seconds"].numpy()[keep]
    assert set(np.round(starts % 5, 9)) == {0.0}
    probs = _probs(len(sources), seed=5)
    shardkit.add_labels(mel, tmp_path / "sets" / "mel-pl", name="pl", sources=sources, start_seconds=starts,
                        probs=probs, classes=CLASSES, window_seconds=5)
    back = shardkit.ShardDataset(tmp_path / "sets" / "mel-pl", crop_seconds=5, crops="grid", shuffle=False,
                                 batch_size=64, targets="pl")
    (b2,) = list(back)
    assert b2["targets_mask"][b2["valid"]].all() and b2["mel"].shape == b["mel"].shape
    np.testing.assert_array_equal(b2["targets"].numpy()[keep], probs.astype(np.float16).astype(np.float32))
