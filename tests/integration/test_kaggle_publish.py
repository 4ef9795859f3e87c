"""``shardkit kaggle publish`` through the real ``kaggle`` 2.2.5 client against a fake Kaggle service on
127.0.0.1 (tests/kaggle_fake.py): the bytes that arrive, the metadata, version notes, a failed PUT
resumed, a create error, a 403 "still processing" waited for; then the files as the server stored them,
mounted read-only like a notebook's /kaggle/input, give the same DataLoader batches as the local set."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from kaggle_fake import FakeKaggle
from torch.utils.data import DataLoader

import shardkit
import shardkit.format
from shardkit.kaggle import locate, prepare

pytest.importorskip("kaggle")
REF = "tester/bird-shards"


@pytest.fixture
def fake(tmp_path):
    with FakeKaggle(tmp_path / "server") as server:
        yield server


@pytest.fixture
def upload(packed, tmp_path):
    return prepare(packed, REF, "Bird shards v1", "CC-BY-4.0", subtitle="Shards of a small BirdCLEF-like corpus",
                   keywords=["audio", "birds"], out=tmp_path / "up").folder


def publish(fake, home, *args, ok=True, timeout=300):
    proc = subprocess.run([sys.executable, "-m", "shardkit_cli", "kaggle", "publish", *map(str, args),
                           "--poll-seconds", "0.05"], capture_output=True, text=True, env=fake.env(home),
                          timeout=timeout)
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_create_then_version_uploads_every_byte(fake, upload, tmp_path):
    p = publish(fake, tmp_path / "home", upload)
    assert f"created {REF}" in p.stdout and "Traceback" not in p.stderr
    stored = fake.files(REF)
    local = {n: sha(upload / n) for n in os.listdir(upload) if n != "dataset-metadata.json"}
    assert {n: sha(stored / n) for n in os.listdir(stored)} == local
    created = fake.datasets[REF].created
    assert created["title"] == "Bird shards v1" and created["licenseName"] == "CC-BY-4.0"
    assert created["subtitle"] == "Shards of a small BirdCLEF-like corpus" and created["isPrivate"] is True
    assert created["categoryIds"] == ["audio", "birds"]
    described = {f["token"]: f.get("description", "") for f in created["files"]}
    assert all(described.values()) and any(".shard" in d or "POSIX tar" in d for d in described.values())
    assert any(a.startswith("Basic ") for a in fake.auth)
    fake.datasets[REF].processing = 3  # the first version is still processing: the new one waits for it
    p = publish(fake, tmp_path / "home", upload, "--notes", "second cut")
    assert f"new version of {REF}" in p.stdout and "still processing" in p.stderr
    assert [v["notes"] for v in fake.datasets[REF].versions] == [None, "second cut"]
    assert {n: sha(fake.files(REF) / n) for n in os.listdir(fake.files(REF))} == local
    p = publish(fake, tmp_path / "home", upload)  # default notes: the version id and totals
    assert shardkit.format.Manifest.load(upload).version_id in fake.datasets[REF].versions[-1]["notes"]


def test_failed_put_is_resumed_not_restarted(fake, upload, tmp_path):
    shard = shardkit.format.Manifest.load(upload).shards[0]
    fake.fail_put[shard.name] = 500
    p = publish(fake, tmp_path / "home", upload)
    assert "resuming, attempt 2" in p.stderr
    assert sha(fake.files(REF) / shard.name) == shard.sha256
    puts = [body for method, name, body in fake.requests if method == "PUT" and name == shard.name]
    assert puts[1]["range"] == f"bytes */{shard.bytes}"                       # asked where it stopped
    assert puts[2]["range"].startswith(f"bytes {shard.bytes // 2}-")          # and sent only the rest
    starts = [b["name"] for b in fake.calls("StartBlobUpload")]
    assert len(starts) == len(set(starts))  # no file was started twice: uploaded ones were kept


def test_an_unanswered_put_times_out_and_resumes(fake, upload, tmp_path):
    shard = shardkit.format.Manifest.load(upload).shards[0]
    fake.hang_put[shard.name] = 1  # half of the bytes arrive, then the server never answers
    p = publish(fake, tmp_path / "home", upload, "--timeout", "2", timeout=120)
    assert fake.hung == 1 and "Traceback" not in p.stderr
    assert sha(fake.files(REF) / shard.name) == shard.sha256
    puts = [body["range"] for method, name, body in fake.requests if method == "PUT" and name == shard.name]
    assert f"bytes */{shard.bytes}" in puts                                   # asked where it stopped
    assert any(r and r.startswith(f"bytes {shard.bytes // 2}-") for r in puts)  # and sent only the rest


def test_an_upload_that_never_answers_fails_by_name(fake, upload, tmp_path):
    shard = shardkit.format.Manifest.load(upload).shards[0]
    fake.hang_put[shard.name] = 10**6
    p = publish(fake, tmp_path / "home", upload, "--timeout", "1", "--attempts", "1", ok=False, timeout=240)
    assert p.returncode == 1 and "Traceback" not in p.stderr and REF not in fake.datasets
    assert "no answer" in p.stderr and "run the same command again" in p.stderr, p.stderr


def test_a_rerun_resumes_a_failed_upload(fake, upload, tmp_path):
    shard = shardkit.format.Manifest.load(upload).shards[-1]
    fake.fail_put[shard.name] = 500
    p = publish(fake, tmp_path / "home", upload, "--attempts", "1", ok=False)
    assert p.returncode != 0 and "run the same command again" in p.stderr and REF not in fake.datasets
    publish(fake, tmp_path / "home", upload)
    assert sha(fake.files(REF) / shard.name) == shard.sha256
    puts = [body["range"] for method, name, body in fake.requests if method == "PUT" and name == shard.name]
    assert puts[1:] == [f"bytes */{shard.bytes}", f"bytes {shard.bytes // 2}-{shard.bytes - 1}/{shard.bytes}"]
    starts = [b["name"] for b in fake.calls("StartBlobUpload")]
    assert len(starts) == len(set(starts))


def test_create_error_and_busy_refusal(fake, upload, tmp_path):
    fake.create_error = "The requested title is already in use"
    p = publish(fake, tmp_path / "home", upload, ok=False)
    assert p.returncode != 0 and "already in use" in p.stderr and REF in p.stderr and "Traceback" not in p.stderr
    fake.create_error = None
    publish(fake, tmp_path / "home", upload)
    fake.busy_refusals = 2
    p = publish(fake, tmp_path / "home", upload, "--notes", "after busy")
    assert p.stderr.count("still processing") >= 2 and fake.datasets[REF].versions[-1]["notes"] == "after busy"
    fake.busy_refusals = 10**6
    p = publish(fake, tmp_path / "home", upload, "--wait-minutes", "0.002", ok=False)
    assert p.returncode != 0 and "HTTP 403" in p.stderr and "still processing" in p.stderr


def test_an_html_answer_is_named_not_the_network(fake, upload, tmp_path):
    """issue 22 item 17: an HTML page where Kaggle's JSON should be (a proxy, a login page) is said to be one
    (was: "cannot reach Kaggle … check the network")."""
    fake.html_answers = 10
    p = publish(fake, tmp_path / "home", upload, ok=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    assert "not Kaggle's API" in p.stderr and "HTML" in p.stderr and "check the network" not in p.stderr, p.stderr
    assert not fake.datasets


@pytest.mark.parametrize("title", ["Bird shards\nv1", "Bird\x00shards v1", "Bird shards\tv1"])
def test_a_title_with_a_control_character_is_refused(packed, tmp_path, title):
    """issue 22 item 17: a newline, NUL or tab in a title (or subtitle) is refused by name before anything is
    written (was accepted)."""
    title = title.encode().decode("unicode_escape")
    with pytest.raises(shardkit.errors.UsageError, match="control character"):
        prepare(packed, REF, title, "CC-BY-4.0", out=tmp_path / "up")
    with pytest.raises(shardkit.errors.UsageError, match="control character"):
        prepare(packed, REF, "Bird shards v1", "CC-BY-4.0", subtitle=f"A subtitle long enough {title}",
                out=tmp_path / "up")
    assert not (tmp_path / "up").exists()


def test_no_folder_no_credentials_no_client(fake, packed, upload, tmp_path):
    env = fake.env(tmp_path / "home")
    del env["KAGGLE_KEY"]

    def run(location, extra_env):
        return subprocess.run([sys.executable, "-m", "shardkit_cli", "kaggle", "publish", str(location)],
                              capture_output=True, text=True, env={**env, **extra_env})

    p = run(packed.parent / "elsewhere", {})
    assert p.returncode == 2 and "does not exist" in p.stderr
    p = run(tmp_path, {})
    assert p.returncode == 2 and "kaggle prepare" in p.stderr
    p = run(upload, {})
    assert p.returncode == 1 and "no Kaggle credentials" in p.stderr and "Traceback" not in p.stderr
    shim = tmp_path / "shim"  # kaggle 2.2.5 imports six without declaring it: a missing six, as pip leaves it
    shim.mkdir()
    (shim / "six.py").write_text("raise ImportError('No module named six')\n")
    p = run(upload, {"PYTHONPATH": os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")])})
    assert p.returncode == 2 and "pip install 'shardkit[kaggle]'" in p.stderr and "Traceback" not in p.stderr


def _mount(stored: Path, root: Path, layout: str) -> Path:
    folder = root / ("datasets/tester/bird-shards" if layout == "new" else "bird-shards")
    shutil.copytree(stored, folder)
    for p in [folder, *folder.iterdir()]:
        p.chmod(stat.S_IRUSR | stat.S_IXUSR if p.is_dir() else stat.S_IRUSR)
    return folder


def _batches(source) -> list:
    ds = shardkit.ShardDataset(source, crop_seconds=0.5, batch_size=4, seed=3)
    return list(DataLoader(ds, batch_size=None, num_workers=2))


@pytest.mark.parametrize("layout", ["new", "old"])
def test_notebook_reads_what_the_server_stored(fake, upload, packed, tmp_path, layout):
    publish(fake, tmp_path / "home", upload)
    root = tmp_path / "kaggle" / "input"
    folder = _mount(fake.files(REF), root, layout)
    try:
        found = locate(REF, input_root=root)
        assert found.path == folder and found.search_path[0] == folder
        assert not str(found.cache_dir).startswith(str(root))
        expected = _batches(packed)
        got = _batches(found.path)
        assert len(got) == len(expected) > 1
        for a, b in zip(expected, got):
            assert a["keys"] == b["keys"] and torch.equal(a["audio"], b["audio"])
        os.environ["KAGGLE_CACHE_MOUNT_FOLDER"] = str(root)
        via_url = _batches("kaggle://" + REF)
        assert [b["keys"] for b in via_url] == [b["keys"] for b in expected]
        assert sorted(os.listdir(folder)) == sorted(os.listdir(fake.files(REF)))  # nothing written there
    finally:
        os.environ.pop("KAGGLE_CACHE_MOUNT_FOLDER", None)
        for p in [folder, *folder.iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)


def test_publish_a_wheelhouse(fake, tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "shardkit_cli", "kaggle", "wheelhouse", str(wheels), "--no-deps", "--id",
                    "tester/shardkit-wheels"], check=True, capture_output=True, timeout=600)
    publish(fake, tmp_path / "home", wheels)
    (wheel,) = wheels.glob("*.whl")
    assert sha(fake.files("tester/shardkit-wheels") / wheel.name) == sha(wheel)
