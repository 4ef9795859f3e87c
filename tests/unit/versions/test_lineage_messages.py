"""Issue 22 item 15: what verify, info and update say about derived sets leads somewhere — advice that
rebuilds what is broken, the options the docs list, counts that add up, missing shards named."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from versions_factory import corpus, options, rows, write_rows

import shardkit
import shardkit.format
from shardkit.format import ShardIndex


@pytest.fixture()
def chain(chain):
    """(root, v1, v2) of conftest's chain of two versions."""
    root, _, v1, v2, _, _ = chain
    return root, v1, v2


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "shardkit_cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


def _inherited(v2):
    return next(e for e in shardkit.format.Manifest.load(v2).shards if e.origin)


def test_a_forged_ancestor_index_is_fixed_where_it_lies(chain):
    _, v1, v2 = chain
    entry = _inherited(v2)
    idx = ShardIndex.load(v1 / entry.index)
    idx.columns["label"] = [(x + 1) % len(idx.vocabulary) for x in idx.columns["label"]]  # forged labels
    (v1 / entry.index).write_bytes(idx.to_bytes())
    report = shardkit.verify(v2)
    assert not report.ok and any(p.file == entry.index for p in report.problems)
    assert any(f"shardkit reindex {v1}'" in a for a in report.advice), report.advice
    assert not any(f"shardkit reindex {v2}'" in a for a in report.advice), report.advice
    shardkit.reindex(v1)  # the advice works
    assert shardkit.verify(v2).ok


def test_verify_takes_search_path_and_counts_shards_it_could_not_find(chain):
    root, v1, v2 = chain
    elsewhere = root / "inputs" / "birds-2025"
    elsewhere.parent.mkdir()
    v1.rename(elsewhere)
    p = _cli("verify", v2)
    n = len(shardkit.format.Manifest.load(v2).shards)
    assert p.returncode != 0 and f"1 problem in {n} shards" in p.stdout and "0 shards" not in p.stdout, p.stdout
    p = _cli("verify", v2, "--search-path", root / "inputs")
    assert p.returncode == 0 and p.stdout.startswith("OK"), p.stdout + p.stderr


def test_info_names_the_missing_parent_shards(chain):
    _, v1, v2 = chain
    entry = _inherited(v2)
    (v1 / entry.name).unlink()
    i = shardkit.info(v2)
    assert i.missing_shards == [entry.name]
    p = _cli("info", v2)
    assert p.returncode == 0 and entry.name in p.stdout and "not found" in p.stdout, p.stdout
    assert "used where they are" not in p.stdout


def _forge_overrides(v2, change):
    doc = json.loads((v2 / "manifest.json").read_text())
    change(doc["overrides"])
    (v2 / "manifest.json").write_text(json.dumps(doc))


def test_a_relabel_outside_the_vocabulary_is_blamed_on_the_override(chain):
    _, _, v2 = chain
    key = next(iter(json.loads((v2 / "manifest.json").read_text())["overrides"]["relabels"]))
    _forge_overrides(v2, lambda o: o["relabels"][key].update(primary_label="nosuchbird"))
    report = shardkit.verify(v2)
    bad = [p for p in report.problems if p.key == key]
    assert bad and all(p.file == "manifest.json" and "nosuchbird" in p.what for p in bad), report.problems
    assert not any(p.file.endswith(".idx") or ".index" in p.file for p in report.problems), report.problems


def test_overrides_naming_missing_keys_fail_verify_and_counts_agree(chain):
    _, _, v2 = chain
    entry = shardkit.format.Manifest.load(v2).shards[0]

    def forge(o):
        o.setdefault("removed", {}).setdefault(entry.name, []).append("nosuch/key-0000")
        o.setdefault("relabels", {})["ghost/key-0000"] = {"primary_label": None, "secondary_labels": []}

    _forge_overrides(v2, forge)
    report = shardkit.verify(v2)
    named = {p.key for p in report.problems if p.file == "manifest.json"}
    assert {"nosuch/key-0000", "ghost/key-0000"} <= named, report.problems
    with shardkit.ShardSet.open(v2) as ss:
        assert report.samples == len(ss)


def test_update_counts_rejected_sources_as_rejected_not_added(tmp_path):
    csv_path = corpus(tmp_path)
    v1 = tmp_path / "v1"
    shardkit.pack(tmp_path / "audio", v1, metadata=csv_path, options=options())
    data = rows(csv_path)
    broken = "grewar3/broken.ogg"
    (tmp_path / "audio" / broken).parent.mkdir(exist_ok=True)
    (tmp_path / "audio" / broken).write_bytes(b"OggS not really" * 10)       # rejected when decoded
    data.append({**data[0], "filename": broken, "primary_label": "grewar3"})
    data.append({**data[0], "filename": "grewar3/absent.ogg", "primary_label": "grewar3"})  # rejected by the CSV
    write_rows(csv_path, data)
    r = shardkit.update(tmp_path / "audio", v1, tmp_path / "v2", metadata=csv_path)
    assert broken not in r.added and r.added == []
    assert sorted(j.file for j in r.rejects) == sorted([broken, "grewar3/absent.ogg"])
    assert len(r.rejects) == len(shardkit.info(tmp_path / "v2").rejects)


def test_a_look_alike_parent_found_first_is_skipped_for_the_genuine_one(chain, caplog):
    """Issue 22 item 4: the parent's genuine shard bytes next to a forged index, in a folder searched before
    the real parent, are never used: the index is checked against the manifest's index_sha256."""
    import logging
    import shutil

    from versions_factory import samples

    root, v1, v2 = chain
    want = samples(v2)
    fake = root / "a-look-alike"  # sorts before v1: found first
    fake.mkdir()
    for e in shardkit.format.Manifest.load(v2).shards:
        if e.origin is None:
            continue
        shutil.copy(v1 / e.name, fake / e.name)
        idx = ShardIndex.load(v1 / e.index)
        idx.columns["label"] = [(x + 1) % len(idx.vocabulary) for x in idx.columns["label"]]
        (fake / e.index).write_bytes(idx.to_bytes())
    with caplog.at_level(logging.WARNING):
        assert samples(v2) == want
    assert any("a-look-alike" in r.getMessage() and "index" in r.getMessage() for r in caplog.records)
    shutil.rmtree(v1)  # only the look-alike is left: a named error, never its labels
    with pytest.raises(shardkit.ShardkitError, match="a-look-alike"):
        shardkit.ShardSet.open(v2)
