"""pack on real encoded files: round trips, compatibility, determinism, crash safety, budget, rejects."""

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from audio_factory import make_corpus, make_file

import shardkit
from shardkit import PackOptions, pack
from shardkit.errors import OutputConflictError, PackError
from shardkit.format import PACK_STATE_NAME

GRID = [(ext, sr, ch) for ext in (".ogg", ".flac", ".mp3", ".wav") for sr in (22050, 44100, 48000) for ch in (1, 2)]
GRID += [(".opus", 48000, 1), (".opus", 48000, 2)]


def independent_reference(path: Path, rate: int) -> np.ndarray:
    """decode → mean of channels → resample → int16, written here without shardkit's code."""
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    mono = x.mean(axis=1, dtype=np.float32)
    y = soxr.resample(mono, sr, rate, quality="HQ") if sr != rate else mono
    return np.clip(np.rint(y.astype(np.float64) * 32768), -32768, 32767).astype(np.int16)


@pytest.fixture(scope="module")
def grid_pack(tmp_path_factory):
    src = tmp_path_factory.mktemp("grid")
    files = {}
    for i, (ext, sr, ch) in enumerate(GRID):
        rel = f"c{ch}/r{sr}_{ext[1:]}{ext}"
        files[rel] = make_file(src / rel, 1.7, sr, ch, seed=i)
    out = tmp_path_factory.mktemp("gridout") / "shards"
    result = pack(src, out, options=PackOptions(sample_rate=32000, shard_size="200KB"), workers=2)
    return src, out, files, result


def test_round_trip_equals_independent_decode(grid_pack):
    _src, out, files, result = grid_pack
    assert result.complete and not result.rejects and result.sources_packed == len(GRID)
    by_source = {s.source: s for s in shardkit.list_samples(out)}
    for rel, path in files.items():
        sample = shardkit.read_sample(out, by_source[rel].key)
        got, rate = sf.read(io.BytesIO(sample.data), dtype="int16")
        assert rate == 32000
        np.testing.assert_array_equal(got, independent_reference(path, 32000), err_msg=rel)
        assert sample.meta["source"] == rel
        assert sample.meta["source_sample_rate"] == int(rel.split("/r")[1].split("_")[0])


def test_16bit_mono_wav_at_target_rate_is_bit_exact(tmp_path):
    p = make_file(tmp_path / "src" / "a.wav", 3.0, 32000, 1)
    pack(tmp_path / "src", tmp_path / "out")
    (entry,) = shardkit.list_samples(tmp_path / "out")
    got, _ = sf.read(io.BytesIO(shardkit.read_sample(tmp_path / "out", entry.key).data), dtype="int16")
    ref, _ = sf.read(p, dtype="int16")
    np.testing.assert_array_equal(got, ref)


def test_stereo_kept(tmp_path):
    make_file(tmp_path / "src" / "s.ogg", 1.0, 48000, 2)
    make_file(tmp_path / "src" / "m.ogg", 1.0, 48000, 1)
    pack(tmp_path / "src", tmp_path / "out", options=PackOptions(channels=2))
    for e in shardkit.list_samples(tmp_path / "out"):
        got, _ = sf.read(io.BytesIO(shardkit.read_sample(tmp_path / "out", e.key).data), dtype="int16")
        assert got.shape == (32000, 2)


def test_webdataset_and_tar_read_the_shards_unchanged(grid_pack):
    import webdataset as wds

    _src, out, _files, _ = grid_pack
    doc = json.loads((out / "manifest.json").read_text())
    shards = [str(out / s["name"]) for s in doc["shards"]]
    ours = {e.key: e for e in shardkit.list_samples(out)}
    seen = set()
    for s in wds.WebDataset(shards, shardshuffle=False, empty_check=False).decode():
        key = s["__key__"]
        seen.add(key)
        assert s["mp"]["key"] == key
        audio, rate = sf.read(io.BytesIO(s["wav"]), dtype="int16")
        assert rate == 32000 and len(audio) == ours[key].frames
        assert s["wav"] == shardkit.read_sample(out, key).data
    assert seen == set(ours)
    listing = subprocess.run(["tar", "tf", shards[0]], check=True, capture_output=True, text=True).stdout.split()
    with tarfile.open(shards[0]) as tf:
        assert listing == tf.getnames()
        assert all(m.pax_headers == {} and m.mtime == 0 for m in tf.getmembers())
    assert listing[0].endswith(".wav") and listing[1].endswith(".mp")


def test_segments_mode_tail_policies(tmp_path):
    make_file(tmp_path / "src" / "a" / "x.flac", 12.0, 32000)
    for tail, n, last in (("pad", 3, 5.0), ("keep", 3, 2.0), ("drop", 2, 5.0)):
        out = tmp_path / tail
        r = pack(tmp_path / "src", out, options=PackOptions(mode="segments", segment_seconds=5, tail=tail))
        entries = list(shardkit.list_samples(out))
        assert r.samples == n == len(entries)
        assert sorted(e.seconds for e in entries)[0 if tail == "keep" else -1] == last
        assert sorted(e.start_seconds for e in entries) == [0.0, 5.0, 10.0][:n]
    r = pack(tmp_path / "src", tmp_path / "hop", options=PackOptions(mode="segments", segment_seconds=5,
                                                                     hop_seconds=2.5, tail="drop"))
    assert r.samples == 3  # starts 0, 2.5, 5


@pytest.mark.parametrize("codec", ["wav16", "mel-u8"])
def test_same_bytes_for_1_and_2_workers_and_reruns(corpus, tmp_path, codec):
    src, csv = corpus
    outs = []
    size = "300KB" if codec == "wav16" else "64KB"
    for i, workers in enumerate((1, 2, 2)):
        out = tmp_path / f"o{i}"
        pack(src, out, metadata=csv, options=PackOptions(shard_size=size, codec=codec), workers=workers)
        outs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outs[0] == outs[1] == outs[2]
    assert len([n for n in outs[0] if n.endswith(".tar")]) > 2


def test_rerun_is_a_no_op_and_other_options_conflict(packed, corpus):
    r = pack(corpus[0], packed, metadata=corpus[1], options=PackOptions(shard_size="300KB"))
    assert r.already_complete and r.complete
    with pytest.raises(OutputConflictError, match="other sources or options"):
        pack(corpus[0], packed, metadata=corpus[1], options=PackOptions(shard_size="300KB", sample_rate=16000))


def test_metadata_labels_and_extra_columns(packed):
    info = shardkit.info(packed)
    assert info.classes == 3 and info.complete and info.samples == 12
    entries = list(shardkit.list_samples(packed))
    e = next(e for e in entries if e.source == "amecro/XC1000.ogg")
    assert e.primary_label == "amecro" and e.secondary_labels == ("barswa",)
    meta = shardkit.read_sample(packed, e.key).meta
    assert meta["row"] == 1 and meta["extra"]["author"] == "A. Author0" and meta["extra"]["rating"] == 0.5
    assert meta["extra"]["latitude"] == 40.0 and meta["source_format"] == "OGG/VORBIS"


def _cli(*args):
    return [sys.executable, "-m", "shardkit_cli.main", *map(str, args)]


def test_kill_9_then_resume_gives_identical_bytes(tmp_path):
    csv = make_corpus(tmp_path / "c", n_files=40, seconds=(4.0, 12.0), sample_rate=44100)
    args = ["pack", tmp_path / "c" / "audio", None, "--metadata", csv, "--shard-size", "400KB", "--workers", "2"]
    ref = tmp_path / "ref"
    subprocess.run(_cli(*[a if a is not None else ref for a in args]), check=True, capture_output=True)
    ref_bytes = {p.name: p.read_bytes() for p in sorted(ref.iterdir())}
    assert len(ref_bytes) > 10
    for kill_when in ("early", "after-first-shard"):
        out = tmp_path / kill_when
        argv = _cli(*[a if a is not None else out for a in args])
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if kill_when == "early" and (out / PACK_STATE_NAME).exists():
                break
            if kill_when == "after-first-shard" and (out / "shard-00001.index").exists():
                break
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (out / "manifest.json").exists(), "the pack finished before it could be killed"
        subprocess.run(argv, check=True, capture_output=True)
        got = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
        assert got.keys() == ref_bytes.keys(), kill_when
        assert got == ref_bytes, kill_when


def test_budget_stops_cleanly_and_a_larger_budget_finishes(corpus, tmp_path):
    src, csv = corpus
    full = pack(src, tmp_path / "full", metadata=csv, options=PackOptions(shard_size="300KB"))
    out = tmp_path / "b"
    r = pack(src, out, metadata=csv, options=PackOptions(shard_size="300KB"), budget=full.bytes // 2)
    assert not r.complete and 0 < r.shards and r.bytes <= full.bytes // 2
    assert r.more_bytes_needed > 0
    assert shardkit.verify(out).ok
    info = shardkit.info(out)
    assert not info.complete and info.samples == r.samples
    r2 = pack(src, out, metadata=csv, options=PackOptions(shard_size="300KB"), budget="1GB")
    assert r2.complete and r2.samples == full.samples and r2.resumed
    assert shardkit.verify(out).ok
    assert {e.key for e in shardkit.list_samples(out)} == {e.key for e in shardkit.list_samples(tmp_path / "full")}


def test_each_bad_input_gets_its_named_reject(tmp_path):
    src = tmp_path / "src"
    make_file(src / "good" / "ok.ogg", 2.0, 32000)
    for name, ext in (("trunc_ogg", ".ogg"), ("trunc_flac", ".flac"), ("trunc_mp3", ".mp3"), ("trunc_wav", ".wav")):
        p = make_file(src / "bad" / f"{name}{ext}", 3.0, 44100, seed=3)
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    (src / "bad" / "empty.ogg").write_bytes(b"")
    (src / "bad" / "text.flac").write_text("this is not audio " * 30)
    csv = tmp_path / "m.csv"
    names = ["good/ok.ogg", "bad/trunc_ogg.ogg", "bad/trunc_flac.flac", "bad/trunc_mp3.mp3", "bad/trunc_wav.wav",
             "bad/empty.ogg", "bad/text.flac", "bad/gone.ogg"]
    csv.write_text("primary_label,secondary_labels,filename\n" + "".join(f"x,[],{n}\n" for n in names))
    r = pack(src, tmp_path / "out", metadata=csv, workers=2)
    reasons = {rj.file: rj.reason for rj in r.rejects}
    assert r.complete and r.samples == 1
    assert reasons["bad/trunc_ogg.ogg"].startswith("truncated")
    assert reasons["bad/trunc_flac.flac"].startswith(("truncated", "unreadable"))
    assert reasons["bad/trunc_mp3.mp3"].startswith("truncated")
    assert reasons["bad/trunc_wav.wav"].startswith("truncated")
    assert reasons["bad/empty.ogg"].startswith("empty")
    assert reasons["bad/text.flac"].startswith("not audio")
    assert reasons["bad/gone.ogg"].startswith("missing")
    doc = json.loads((tmp_path / "out" / "rejects.json").read_text())  # format 4: rejects in their own file
    assert {r["file"] for r in doc["rejects"]} == set(reasons)
    assert {r["row"] for r in doc["rejects"]} == {2, 3, 4, 5, 6, 7, 8}
    with pytest.raises(PackError, match="--strict"):
        pack(src, tmp_path / "strict", metadata=csv, strict=True)


def test_strict_keeps_finished_shards(tmp_path):
    src = tmp_path / "src"
    for i in range(6):
        make_file(src / f"f{i}.wav", 2.0, 32000, seed=i)
    (src / "zz_bad.wav").write_text("junk " * 50)
    out = tmp_path / "out"
    with pytest.raises(PackError):
        pack(src, out, options=PackOptions(shard_size="100KB", order="sorted"), strict=True)
    finished = sorted(p.name for p in out.glob("shard-*.tar"))
    assert finished and not list(out.glob("*.tmp"))
    r = pack(src, out, options=PackOptions(shard_size="100KB", order="sorted"))
    assert r.complete and r.samples == 6 and len(r.rejects) == 1


def test_verify_finds_a_flipped_byte_and_names_the_sample(packed, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(packed, bad)
    assert shardkit.verify(bad).ok
    entry = list(shardkit.list_samples(bad))[3]
    from shardkit.format import ShardIndex, index_name

    idx = ShardIndex.load(bad / index_name(entry.shard))
    i = idx.columns["key"].index(entry.key)
    off = idx.columns["wav_offset"][i] + 44 + 100
    data = bytearray((bad / entry.shard).read_bytes())
    data[off] ^= 0x01
    (bad / entry.shard).write_bytes(bytes(data))
    report = shardkit.verify(bad)
    assert not report.ok
    whats = [str(p) for p in report.problems]
    assert any(entry.shard in w and "sha256" in w for w in whats)
    assert any(p.key == entry.key and "CRC-32" in p.what for p in report.problems)


def test_disk_full_is_a_clear_error_and_a_rerun_finishes_with_the_same_bytes(corpus, tmp_path, monkeypatch):
    import errno

    from shardkit.errors import PackError
    from shardkit.write import shards as shards_mod

    src, csv = corpus
    clean = tmp_path / "clean"
    pack(src, clean, metadata=csv, options=PackOptions(shard_size="300KB"))
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 5:  # after the state files' four (file + folder, twice): a shard's step, disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(shards_mod.os, "fsync", fsync)
    out = tmp_path / "full"
    with pytest.raises(PackError, match=r"No space left on device.*finished shards are kept"):
        pack(src, out, metadata=csv, options=PackOptions(shard_size="300KB"))
    monkeypatch.setattr(shards_mod.os, "fsync", real_fsync)
    pack(src, out, metadata=csv, options=PackOptions(shard_size="300KB"))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {p.name: p.read_bytes() for p in clean.iterdir()}
