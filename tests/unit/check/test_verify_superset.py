"""verify is the reader's superset (issue 14, part 2): every forgery ShardSet.open refuses, verify
reports, naming the file (and the sample where there is one); and verify also holds the tar itself to
the spec (headers, typeflags, names, offsets, end-of-archive), which the reader never parses."""

from __future__ import annotations

import io
import shutil
import tarfile

import numpy as np
import pytest
from forge import edit_index, edit_manifest, edit_shard, set_header

import shardkit
from shardkit import ShardSet, ShardSetWriter
from shardkit.errors import FormatError, ManifestError, ShardkitError
from shardkit.format import ShardIndex


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean") / "set"
    with ShardSetWriter(root, sample_rate=16000, shard_size="20KB", vocabulary=["a", "b"]) as w:
        for k in range(8):
            w.write(np.full(1600, k, np.int16), key=f"src/k{k}", primary_label="ab"[k % 2],
                    secondary_labels=["b"] if k == 3 else [])
    assert shardkit.verify(root).ok
    return root


@pytest.fixture()
def bad(clean, tmp_path):
    root = tmp_path / "bad"
    shutil.copytree(clean, root)
    return root


def _copy_shard_as_second_entry(root):
    """shard 0 and its index copied under new names and listed again, every hash consistent: the keys repeat."""
    shutil.copy(root / "shard-00000.tar", root / "shard-00009.tar")
    shutil.copy(root / "shard-00000.index", root / "shard-00009.index")
    edit_manifest(root, lambda d: d["shards"].append({**d["shards"][0], "name": "shard-00009.tar",
                                                      "index": "shard-00009.index"}))
    n = len(shardkit.format.Manifest.load(root).shards) - 1
    edit_index(root, n, lambda idx: setattr(idx, "shard", "shard-00009.tar"), name="shard-00009.index")


def _drop_entries(root, keep):
    """The manifest lists only its first ``keep`` shards (the others' files deleted), totals left as they were."""
    doc = shardkit.format.Manifest.load(root)
    for e in doc.shards[keep:]:
        (root / e.name).unlink()
        (root / e.index).unlink()
    edit_manifest(root, lambda d: d.update(shards=d["shards"][:keep]))


def _set_col(col, row, value):
    def edit(idx):
        idx.columns[col][row] = value
    return edit


FORGERIES = {
    "vocabulary in the manifest": lambda r: edit_manifest(r, lambda d: d["vocabulary"].append("c")),
    "audio in the manifest": lambda r: edit_manifest(r, lambda d: d["audio"].update(sample_rate=22050)),
    "a shard copied as a second entry": _copy_shard_as_second_entry,
    "a label outside the vocabulary": lambda r: edit_index(r, 0, _set_col("label", 1, 7)),
    "a secondary label outside the vocabulary": lambda r: edit_index(r, 0, _set_col("secondary", 0, [2])),
    "a negative data offset": lambda r: edit_index(r, 0, _set_col("wav_offset", 1, -512)),
    "a negative meta offset": lambda r: edit_index(r, 0, _set_col("meta_offset", 1, -100)),
    "a negative meta size": lambda r: edit_index(r, 0, _set_col("meta_size", 1, -5)),
    "a key with ..": lambda r: edit_index(r, 0, _set_col("key", 0, "../evil")),
    "an offset as a string": lambda r: edit_index(r, 0, _set_col("wav_offset", 0, "512")),
    "a sample count": lambda r: edit_manifest(r, lambda d: d["shards"][0].update(samples=99)),
    "an index of another shard": lambda r: edit_index(r, 0, lambda i: setattr(i, "shard", "shard-00001.tar")),
    "totals counting samples no entry lists": lambda r: _drop_entries(r, keep=0),
    "totals counting a shard dropped from the list": lambda r: _drop_entries(r, keep=1),
    "a total of frames": lambda r: edit_manifest(r, lambda d: d["totals"].update(frames=d["totals"]["frames"] + 1)),
    "a total of seconds": lambda r: edit_manifest(r, lambda d: d["totals"].update(seconds=99.5)),
    "a total of bytes": lambda r: edit_manifest(r, lambda d: d["totals"].update(bytes=d["totals"]["bytes"] * 2)),
    "a total that is not a number": lambda r: edit_manifest(r, lambda d: d["totals"].update(hours="many")),
}


@pytest.mark.parametrize("forge_it", FORGERIES.values(), ids=FORGERIES.keys())
def test_every_forgery_the_reader_refuses_verify_reports(bad, forge_it):
    forge_it(bad)
    with pytest.raises(ShardkitError):
        ShardSet.open(bad)
    report = shardkit.verify(bad)
    assert not report.ok and report.advice
    assert all(p.file for p in report.problems)


def test_problems_name_the_sample(bad):
    edit_index(bad, 0, _set_col("label", 1, 7))
    report = shardkit.verify(bad)
    key = ShardIndex.load(bad / "shard-00000.index").columns["key"][1]
    assert any(p.key == key and "vocabulary" in p.what and p.file == "shard-00000.index" for p in report.problems)
    assert any("shardkit reindex" in a for a in report.advice)


def test_a_literal_duplicate_entry_makes_the_manifest_unusable(bad):
    edit_manifest(bad, lambda d: d["shards"].append(d["shards"][0]))
    for call in (ShardSet.open, shardkit.verify):
        with pytest.raises(ManifestError, match="listed twice"):
            call(bad)


def _header_offset(root, row=0, member="wav"):
    idx = ShardIndex.load(root / "shard-00000.index")
    return idx.columns[f"{member}_offset"][row] - 512, idx.columns["key"][row]


@pytest.mark.parametrize("how", ["../evil.wav", "/abs/evil.wav", "symlink", "hardlink", "folder", "other name"])
def test_a_forged_member_header_is_reported_with_hashes_updated(bad, how, tmp_path):
    off, key = _header_offset(bad)
    kw = {"symlink": {"typeflag": tarfile.SYMTYPE, "linkname": "/etc/passwd"},
          "hardlink": {"typeflag": tarfile.LNKTYPE, "linkname": "/etc/passwd"},
          "folder": {"typeflag": tarfile.DIRTYPE},
          "other name": {"name": "src/zz.wav"}}.get(how, {"name": how})
    edit_shard(bad, 0, lambda data: set_header(data, off, **kw))
    report = shardkit.verify(bad)
    assert not report.ok
    assert any(p.file == "shard-00000.tar" for p in report.problems), report.problems
    # the reader reads by offset, never by header: it stays inside the set and serves the indexed bytes
    s = ShardSet.open(bad)
    assert s.read_frames(s.find(key))[0] == 0


def test_tar_extraction_risk_is_what_verify_names(bad):
    off, key = _header_offset(bad)
    edit_shard(bad, 0, lambda data: set_header(data, off, typeflag=tarfile.SYMTYPE, linkname="/etc/passwd"))
    whats = " ".join(str(p) for p in shardkit.verify(bad).problems)
    assert "symlink, not a regular file" in whats and key in whats


@pytest.mark.parametrize("damage", ["checksum", "magic", "no end", "trailing data", "extra member"])
def test_tar_structure_against_the_spec(bad, damage):
    def edit(data):
        if damage == "checksum":
            data[100] ^= 1  # the mode field of the first header
        elif damage == "magic":
            data[257:263] = b"gnu  \0"
            data[148:156] = b"%06o\0 " % (sum(data[:148]) + 256 + sum(data[156:512]))
        elif damage == "no end":
            del data[-1024:]
        elif damage == "trailing data":
            data.extend(b"hidden" + bytes(506))
        else:
            extra = io.BytesIO()
            with tarfile.open(fileobj=extra, mode="w", format=tarfile.USTAR_FORMAT) as t:
                info = tarfile.TarInfo("src/zz.mp")
                info.size = 3
                t.addfile(info, io.BytesIO(b"abc"))
            data[-1024:] = extra.getvalue()[:1024]
            data.extend(bytes(1024))
    edit_shard(bad, 0, edit)
    expected = {"checksum": "header checksum is wrong", "magic": "not POSIX ustar",
                "no end": "without its two end-of-archive blocks", "trailing data": "follow the end-of-archive",
                "extra member": "'src/zz.mp' at offset"}[damage]
    assert any(p.file == "shard-00000.tar" and expected in p.what for p in shardkit.verify(bad).problems)


def test_index_offsets_must_point_exactly_at_member_data(bad):
    # shift sample 1's .mp offset onto its data member's data, sizes kept inside the shard
    idx = ShardIndex.load(bad / "shard-00000.index")
    edit_index(bad, 0, _set_col("meta_offset", 1, idx.columns["meta_offset"][1] - 512))
    report = shardkit.verify(bad)
    assert any(p.key == idx.columns["key"][1] and "not where a member's data starts" in p.what
               for p in report.problems)


def test_verify_never_raises_on_damage_beyond_the_manifest(bad):
    (bad / "shard-00000.index").write_bytes(b"garbage")
    (bad / "shard-00001.tar").write_bytes(b"x" * 100)
    report = shardkit.verify(bad)
    assert {p.file for p in report.problems} >= {"shard-00000.index", "shard-00001.tar"}
    with pytest.raises(FormatError):
        ShardSet.open(bad)


@pytest.mark.parametrize("keep", [0, 1])
def test_totals_must_be_what_the_shard_entries_hold(bad, keep):
    """A manifest listing no shard (or fewer) whose totals still count every sample: verify names the
    manifest and the totals, the reader refuses it, and info reports what the entries hold."""
    stated = shardkit.format.Manifest.load(bad).totals["samples"]
    _drop_entries(bad, keep)
    report = shardkit.verify(bad)
    assert [p.file for p in report.problems] == ["manifest.json"] * len(report.problems)
    assert any(f"totals.samples is {stated}" in p.what for p in report.problems), report.problems
    assert any("re-pack" in a for a in report.advice)
    with pytest.raises(ManifestError, match=r"totals\.samples"):
        ShardSet.open(bad)
    held = sum(e.samples for e in shardkit.format.Manifest.load(bad).shards)
    assert shardkit.info(bad).samples == held < stated


def test_a_derived_set_counts_its_totals_after_the_tombstones(tmp_path, monkeypatch):
    """Format §5.1: a derived set's totals are what readers see (tombstoned samples and their frames left
    out; bytes of every listed shard, the parent's included). Counting the tombstoned frames is reported."""
    from versions_factory import update_chain

    monkeypatch.setenv("SHARDKIT_CACHE_DIR", str(tmp_path / "cache"))
    update_chain(tmp_path, shard_size="1MB")  # shards of several sources: tombstones
    v2 = tmp_path / "v2"
    doc = shardkit.format.Manifest.load(v2)
    assert doc.overrides.get("removed") and shardkit.verify(v2).ok
    with ShardSet.open(v2) as ss:
        assert (len(ss), int(np.sum(ss.frames))) == (doc.totals["samples"], doc.totals["frames"])
    entries = sum(e.frames for e in doc.shards)
    assert entries > doc.totals["frames"]  # the tombstoned samples' frames are in the entries, not the totals
    edit_manifest(v2, lambda d: d["totals"].update(frames=entries))
    report = shardkit.verify(v2)
    assert any(p.file == "manifest.json" and "totals.frames" in p.what for p in report.problems), report.problems
    with pytest.raises(ManifestError, match=r"totals\.frames"):
        ShardSet.open(v2)
