"""shardkit.update (issue 12): a new version reuses its parent's unchanged shards by reference; readers
see exactly the samples of a fresh pack of the new sources."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from versions_factory import corpus, options, samples, season

import shardkit
from shardkit.errors import IntegrityError, ShardReadError, UsageError

# fixtures ``chain`` and the private user cache: conftest.py


def test_nothing_changed_gives_the_same_version_and_no_shard(tmp_path):
    csv_path = corpus(tmp_path)
    shardkit.pack(tmp_path / "audio", tmp_path / "v1", metadata=csv_path, options=options())
    r = shardkit.update(tmp_path / "audio", tmp_path / "v1", tmp_path / "v1b", metadata=csv_path)
    assert r.version_id == shardkit.info(tmp_path / "v1").version_id
    assert r.new_shards == 0 and not list((tmp_path / "v1b").glob("shard-*"))
    assert (r.added, r.changed, r.removed, r.relabelled) == ([], [], [], [])
    assert samples(tmp_path / "v1b") == samples(tmp_path / "v1")


def test_update_packs_only_new_and_changed_sources_and_reads_like_a_fresh_pack(chain):
    root, csv_path, v1, v2, kinds, r = chain
    assert r.added == kinds["added"] and r.changed == kinds["changed"]
    assert r.removed == kinds["removed"] and r.relabelled == kinds["relabelled"]
    m = shardkit.format.Manifest.load(v2)
    own = [e for e in m.shards if e.origin is None]
    new_sources = {s for e in own for s in shardkit.format.ShardIndex.load(v2 / e.index).columns["source"]}
    assert new_sources == set(kinds["added"] + kinds["changed"])
    assert {e.name for e in m.shards if e.origin} <= {e.name for e in shardkit.format.Manifest.load(v1).shards}
    assert all(not (v2 / e.name).exists() for e in m.shards if e.origin)  # referenced, not copied
    first = shardkit.format.Manifest.load(v1).shards
    assert min(int(e.name[6:11]) for e in own) > max(int(e.name[6:11]) for e in first)
    fresh = root / "fresh"
    shardkit.pack(root / "audio", fresh, metadata=csv_path, options=options())
    got, want = samples(v2), samples(fresh)
    assert got == want
    assert got[kinds["relabelled"][0].rsplit(".", 1)[0] + "-0000"][0] == "newbirdXN"
    assert m.parent == shardkit.info(v1).version_id and m.history[-1]["note"] == "season 2"
    assert m.samples == len(want) == shardkit.info(v2).samples


def test_ls_cat_and_verify_apply_the_overrides(chain):
    _, _, _, v2, kinds, _ = chain
    listed = {e.key: e for e in shardkit.list_samples(v2)}
    assert set(listed) == set(samples(v2))
    key = kinds["relabelled"][0].rsplit(".", 1)[0] + "-0000"
    assert listed[key].primary_label == "newbirdXN" and listed[key].source == kinds["relabelled"][0]
    assert shardkit.read_sample(v2, key).meta["primary_label"] == "newbirdXN"
    assert not any(e.source in kinds["removed"] for e in listed.values())
    assert shardkit.verify(v2).ok


def test_diff_reports_exactly_the_change(chain):
    _, _, v1, v2, _, _ = chain
    d = shardkit.diff(v1, v2)
    assert (d.added.sources, d.removed.sources, d.changed.sources, d.relabelled.sources) == (3, 1, 1, 1)
    assert d.added.samples == 3 and d.classes_new == ["newbirdXN"] and d.classes_gone == []
    assert d.per_class["newbirdXN"]["relabelled_in"].samples == 1
    json.dumps(d.to_dict())


def test_a_chain_of_three_compacts_to_a_fresh_pack(chain):
    root, csv_path, v1, v2, _, _ = chain
    season(root, csv_path, tag="XM", seed=300)
    v3 = root / "v3"
    r = shardkit.update(root / "audio", v2, v3, metadata=csv_path)
    assert {e.origin for e in shardkit.format.Manifest.load(v3).shards} >= {shardkit.info(v1).version_id, None}
    assert [h["version_id"] for h in shardkit.history(v3)] == [shardkit.info(v).version_id for v in (v1, v2, v3)]
    fresh = root / "fresh3"
    shardkit.pack(root / "audio", fresh, metadata=csv_path, options=options())
    assert samples(v3) == samples(fresh)
    c = shardkit.compact(v3, root / "v3c")
    assert samples(root / "v3c") == samples(fresh)
    assert c.version_id == shardkit.info(fresh).version_id  # the same shard bytes as the fresh pack
    assert not shardkit.format.Manifest.load(root / "v3c").derived and r.new_shards >= 1


def test_a_missing_parent_shard_is_a_named_error(chain):
    _, _, v1, v2, _, _ = chain
    name = next(e for e in shardkit.format.Manifest.load(v2).shards if e.origin).name
    (v1 / name).rename(v1 / "moved.bak")
    with pytest.raises(ShardReadError, match=rf"{name} of version sk1-[0-9a-f]+ not found"):
        shardkit.ShardSet.open(v2)
    assert not shardkit.verify(v2).ok


def test_a_parent_shard_with_other_bytes_is_a_named_error(chain):
    _, _, v1, v2, _, _ = chain
    name = next(e for e in shardkit.format.Manifest.load(v2).shards if e.origin).name
    raw = bytearray((v1 / name).read_bytes())
    raw[-2000] ^= 0xFF  # same size, other bytes
    (v1 / name).write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=rf"{name} of version sk1-[0-9a-f]+ not found with its bytes"):
        shardkit.ShardSet.open(v2)


def test_parents_are_found_on_the_search_path(chain, monkeypatch):
    root, _, v1, v2, _, _ = chain
    elsewhere = root / "inputs" / "birds-2025"
    elsewhere.parent.mkdir()
    shutil.move(v1, elsewhere)
    with pytest.raises(ShardReadError):
        shardkit.ShardSet.open(v2)
    n = len(shardkit.ShardSet.open(v2, search_path=[root / "inputs"]))
    assert n == len(shardkit.ShardSet.open(v2, search_path=[elsewhere]))
    monkeypatch.setenv("SHARDKIT_SEARCH_PATH", os.pathsep.join(["/nonexistent", str(root / "inputs")]))
    assert len(shardkit.ShardDataset(v2, batch_size=2, crop_seconds=0.5, shuffle=False).shard_set) == n


def test_update_needs_the_parents_options(chain):
    root, csv_path, _, v2, _, _ = chain
    with pytest.raises(UsageError, match="other options"):
        shardkit.update(root / "audio", v2, root / "v9", metadata=csv_path,
                        options=shardkit.PackOptions(sample_rate=22050, shard_size="64KB", max_seconds=2.0))


def test_a_set_without_sources_table_is_refused_by_name(chain):
    root, csv_path, v1, _, _, _ = chain
    (v1 / "sources.json").unlink()
    with pytest.raises(UsageError, match="no sources table"):
        shardkit.update(root / "audio", v1, Path(root / "v9"), metadata=csv_path)


@pytest.mark.parametrize("opts", [
    dict(mode="segments", segment_seconds=0.5, hop_seconds=0.25, tail="pad"),
    dict(codec="mel-u8", mel=shardkit.MelConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=32,
                                                 f_min=50.0, f_max=8000.0)),
], ids=["wav16-segments", "mel-u8"])
def test_other_layouts_and_codecs_update_like_a_fresh_pack(tmp_path, opts):
    csv_path = corpus(tmp_path, n=6)
    o = shardkit.PackOptions(sample_rate=16000, shard_size="64KB", **opts)
    shardkit.pack(tmp_path / "audio", tmp_path / "v1", metadata=csv_path, options=o)
    season(tmp_path, csv_path)
    shardkit.update(tmp_path / "audio", tmp_path / "v1", tmp_path / "v2", metadata=csv_path)
    shardkit.pack(tmp_path / "audio", tmp_path / "fresh", metadata=csv_path, options=o)
    assert samples(tmp_path / "v2") == samples(tmp_path / "fresh")
    assert shardkit.verify(tmp_path / "v2").ok
    assert shardkit.compact(tmp_path / "v2", tmp_path / "c").version_id == shardkit.info(tmp_path / "fresh").version_id


def test_a_changed_csv_column_of_unchanged_audio_is_an_override(tmp_path):
    from versions_factory import rows, write_rows

    csv_path = corpus(tmp_path, n=4)
    shardkit.pack(tmp_path / "audio", tmp_path / "v1", metadata=csv_path, options=options())
    data = rows(csv_path)
    data[0]["rating"] = "4.25"
    write_rows(csv_path, data)
    r = shardkit.update(tmp_path / "audio", tmp_path / "v1", tmp_path / "v2", metadata=csv_path)
    assert r.relabelled == [data[0]["filename"]] and r.new_shards == 0
    key = data[0]["filename"].rsplit(".", 1)[0] + "-0000"
    assert shardkit.read_sample(tmp_path / "v2", key).meta["extra"]["rating"] == 4.25
    assert shardkit.read_sample(tmp_path / "v1", key).meta["extra"]["rating"] != 4.25
    assert r.version_id != shardkit.info(tmp_path / "v1").version_id


def test_parent_shards_are_hashed_once_per_file(chain, tmp_path):
    _, _, v1, v2, _, _ = chain
    shardkit.ShardSet.open(v2)
    known = json.loads((tmp_path / "cache" / "verified-shards.json").read_text())
    used = [e for e in shardkit.format.Manifest.load(v2).shards if e.origin]
    assert {e.sha256 for e in used} <= set(known.values())
    assert all(str(v1.resolve()) in ident for ident in known)


def test_diff_of_unrelated_sets_matches_sources_by_fingerprint(tmp_path):
    from versions_factory import rows, write_rows

    csv_path = corpus(tmp_path, n=4)
    shardkit.pack(tmp_path / "audio", tmp_path / "a", metadata=csv_path, options=options())
    data = rows(csv_path)
    shutil.copy(tmp_path / "audio" / data[0]["filename"], tmp_path / "audio" / "renamed.ogg")
    data[0]["filename"] = "renamed.ogg"
    write_rows(csv_path, data)
    shardkit.pack(tmp_path / "audio", tmp_path / "b", metadata=csv_path,
                  options=shardkit.PackOptions(sample_rate=22050, shard_size="1MB"))
    d = shardkit.diff(tmp_path / "a", tmp_path / "b")
    assert (d.moved.sources, d.unchanged.sources, d.added.sources, d.removed.sources) == (1, 3, 0, 0)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".shardkit.lock"}


def test_an_interrupted_compact_continues_and_a_finished_one_is_kept(chain, monkeypatch):
    """issue 22 item 16: after Ctrl-C (here between a shard's rename and the state that records it) the same
    compact continues to the bytes of an uninterrupted one (was: refused); re-running a finished compact says
    it is already complete (was: "packed from other sources or options")."""
    from shardkit.write import shardset_writer

    root, _, _, v2, _, _ = chain
    whole = shardkit.compact(v2, root / "whole")
    assert whole.shards >= 3 and not whole.already_complete
    finish, calls = shardset_writer.ShardWriter.finish, []

    def interrupted(self):
        record = finish(self)
        calls.append(record)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return record

    monkeypatch.setattr(shardset_writer.ShardWriter, "finish", interrupted)
    with pytest.raises(KeyboardInterrupt):
        shardkit.compact(v2, root / "again")
    monkeypatch.undo()
    assert not (root / "again" / "manifest.json").exists()
    r = shardkit.compact(v2, root / "again")
    assert not r.already_complete and _files(root / "again") == _files(root / "whole")
    again = shardkit.compact(v2, root / "again")
    assert again.already_complete and again.version_id == whole.version_id
    assert _files(root / "again") == _files(root / "whole")
    with pytest.raises(shardkit.errors.OutputConflictError, match="not a compact of"):
        shardkit.compact(v2, root / "again", shard_size="128KB")
