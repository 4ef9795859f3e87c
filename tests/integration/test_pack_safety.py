"""Nothing lost by accident, no process left behind: the pack lock, --overwrite's limits, a pack that
packs nothing, SIGTERM handled like Ctrl-C, and decoding workers that die with the pack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from audio_factory import make_corpus
from procs import alive, children

import shardkit
from shardkit import PackOptions, pack
from shardkit.errors import OutputConflictError, PackError
from shardkit.write.lock import PackLock


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "shardkit_cli", *map(str, args)]


def test_a_second_pack_into_the_same_folder_is_refused_with_the_pid(corpus, tmp_path):
    out = tmp_path / "out"
    with PackLock(out):
        with pytest.raises(OutputConflictError, match=rf"another pack \(pid {os.getpid()}\)"):
            pack(corpus[0], out, metadata=corpus[1])
    r = pack(corpus[0], out, metadata=corpus[1])  # the lock is gone with its holder
    assert r.complete and not (out / "pack.lock").exists()


def test_overwrite_never_deletes_a_users_file(corpus, tmp_path):
    out = tmp_path / "out"
    pack(corpus[0], out, metadata=corpus[1])
    (out / "shard-backup.tar").write_bytes(b"mine")
    with pytest.raises(OutputConflictError, match=r"shard-backup\.tar"):
        pack(corpus[0], out, metadata=corpus[1], options=PackOptions(shard_size="200KB"), overwrite=True)
    assert (out / "shard-backup.tar").read_bytes() == b"mine" and shardkit.verify(out).ok


def test_a_pack_that_packs_nothing_fails(tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "x.ogg").write_bytes(b"not audio")
    with pytest.raises(PackError, match=r"no sample was packed: all 1 sources were rejected \(a/x.ogg"):
        pack(src, tmp_path / "out")
    proc = subprocess.run(_cli("pack", src, tmp_path / "out2"), capture_output=True, text=True)
    assert proc.returncode == 1 and "no sample was packed" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.timeout(300)
def test_sigterm_stops_cleanly_and_kill_9_leaves_no_worker(tmp_path):
    csv = make_corpus(tmp_path / "c", n_files=40, seconds=(4.0, 12.0), sample_rate=44100)
    args = ["pack", tmp_path / "c" / "audio", None, "--metadata", csv, "--shard-size", "400KB", "--workers", "2"]
    ref = tmp_path / "ref"
    subprocess.run(_cli(*[a if a is not None else ref for a in args]), check=True, capture_output=True)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        out = tmp_path / sig.name
        argv = _cli(*[a if a is not None else out for a in args])
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (out / "shard-00001.index").exists():
            time.sleep(0.01)
        workers = children(proc.pid)
        assert workers, "the pack had no worker processes to check"
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
        if sig == signal.SIGTERM:
            assert proc.returncode == 143 and "re-run the same command" in stderr and "Traceback" not in stderr
            assert not list(out.glob("*.tmp"))
        else:
            assert proc.returncode == -9
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(alive(w) for w in workers):
            time.sleep(0.05)
        assert not any(alive(w) for w in workers), f"workers outlived the pack after {sig.name}"
        assert not (out / "manifest.json").exists(), "the pack finished before the signal"
        subprocess.run(argv, check=True, capture_output=True)
        got = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
        assert got == {p.name: p.read_bytes() for p in sorted(ref.iterdir())}, sig.name


def test_resume_refuses_a_source_changed_since_the_interrupted_run(corpus, tmp_path):
    src, csv = corpus
    out = tmp_path / "out"
    first = pack(src, out, metadata=csv, options=PackOptions(shard_size="300KB"), budget="700KB")
    assert not first.complete
    victim = next(p for p in sorted(src.rglob("*.ogg")))
    data = victim.read_bytes()
    try:
        victim.write_bytes(data)  # same bytes, same size: only the modification time moves
        os.utime(victim, ns=(victim.stat().st_atime_ns, victim.stat().st_mtime_ns + 10**9))
        with pytest.raises(OutputConflictError, match=rf"{victim.name} changed since the interrupted pack"):
            pack(src, out, metadata=csv, options=PackOptions(shard_size="300KB"), budget="1GB")
    finally:
        victim.write_bytes(data)
