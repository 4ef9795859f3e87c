"""Sources reached through symlinks (issue 22 item 18): the notebook pattern of building SRC from read-only
inputs (``ln -s /kaggle/input/<comp>/train_audio/* src/``), through a folder scan and a CSV, on real Ogg
Vorbis files and the CLI. One rule for scan and CSV: a symlink that stays inside SRC is followed; one that
leads out is a reject saying so and naming ``--follow-symlinks``, which reads it; ``..`` and absolute
paths in CSV rows stay refused."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from audio_factory import make_corpus

import shardkit
from shardkit.errors import PackError
from shardkit.ingest.sources import discover


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.name != ".shardkit.lock"}


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shardkit_cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    """(input folder as Kaggle mounts it, its CSV, SRC made of symlinks to its label folders)."""
    root = tmp_path_factory.mktemp("symlinks")
    csv = make_corpus(root / "input", n_files=6, seconds=(1.0, 2.0), sample_rate=32000)
    audio = root / "input" / "audio"
    src = root / "src"
    src.mkdir()
    for label in sorted(os.listdir(audio)):
        (src / label).symlink_to(audio / label, target_is_directory=True)
    return audio, csv, src


def test_a_folder_scan_of_symlinked_folders_says_what_happened_and_the_flag_reads_them(linked, tmp_path):
    audio, _, src = linked
    r = _cli("pack", src, tmp_path / "no", "--shard-size", "300KB")
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert "no audio files" not in r.stderr and "symlink" in r.stderr and "--follow-symlinks" in r.stdout + r.stderr
    r = _cli("pack", src, tmp_path / "yes", "--shard-size", "300KB", "--follow-symlinks")
    assert r.returncode == 0 and "complete: 6 samples" in r.stdout, r.stdout + r.stderr
    shardkit.pack(audio, tmp_path / "direct", options=shardkit.PackOptions(shard_size="300KB"))
    assert _hashes(tmp_path / "yes") == _hashes(tmp_path / "direct")  # same keys, sources, bytes


def test_csv_rows_through_symlinks_follow_the_same_rule(linked, tmp_path):
    audio, csv, src = linked
    items, rejects = discover(src, csv)
    assert not items and len(rejects) == 6
    assert all(r.reason.startswith("symlink") and "--follow-symlinks" in r.reason and "'..'" not in r.reason
               for r in rejects), rejects
    with pytest.raises(PackError, match="follow-symlinks"):
        shardkit.pack(src, tmp_path / "no", metadata=csv)
    r = shardkit.pack(src, tmp_path / "yes", metadata=csv, follow_symlinks=True,
                      options=shardkit.PackOptions(shard_size="300KB"))
    shardkit.pack(audio, tmp_path / "direct", metadata=csv, options=shardkit.PackOptions(shard_size="300KB"))
    assert r.samples == 6 and _hashes(tmp_path / "yes") == _hashes(tmp_path / "direct")


def test_dot_dot_and_absolute_rows_stay_refused_when_following(linked, tmp_path):
    audio, _, src = linked
    some = sorted(audio.glob("*/*.ogg"))[0]
    csv = tmp_path / "m.csv"
    csv.write_text(f"filename\n../input/audio/{some.parent.name}/{some.name}\n{some}\n"
                   f"{some.parent.name}/{some.name}\n")
    items, rejects = discover(src, csv, follow_symlinks=True)
    assert [i.rel for i in items] == [f"{some.parent.name}/{some.name}"]
    assert [r.row for r in rejects] == [1, 2] and all(r.reason.startswith("outside SRC") for r in rejects)


def test_a_symlink_loop_is_walked_once(linked, tmp_path):
    audio, _, _ = linked
    src = tmp_path / "src"
    src.mkdir()
    (src / "all").symlink_to(audio, target_is_directory=True)
    (src / "all2").symlink_to(audio, target_is_directory=True)  # the same folder twice
    (src / "loop").symlink_to(src, target_is_directory=True)    # a loop
    items, rejects = discover(src, follow_symlinks=True)
    assert len(items) == 6 and not rejects
    assert all(i.rel.startswith("all/") for i in items)


def test_symlinks_inside_src_need_no_flag(tmp_path):
    root = tmp_path / "c"
    make_corpus(root, n_files=3, seconds=(1.0, 1.5))
    src = root / "audio"
    first = sorted(src.glob("*/*.ogg"))[0]
    (src / "alias.ogg").symlink_to(first)
    items, rejects = discover(src)
    assert len(items) == 4 and not rejects
