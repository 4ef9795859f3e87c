"""``shardkit pack SRC s3://bucket/prefix/`` (issue 10 §3) against a real S3-protocol server on loopback
(moto), with the fault-injecting proxy of remote_fixtures in front of it for the faulty-network case.

Every pack runs in a child process (the CLI, or ``python -c``): the test process never starts obstore's
runtime for writing, and a pack can be killed with ``kill -9``. Each prefix is compared object by object
with a local pack of the same inputs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from audio_factory import make_corpus
from remote_fixtures import CREDENTIALS, Faults, moto_endpoint, proxy, s3_client, url_of

pytestmark = pytest.mark.timeout(300)

#: per test session, so that the default staging folders (named from the URL) of two sessions differ
BUCKET = f"packs-{os.getpid()}"


@pytest.fixture(scope="module")
def s3():
    with moto_endpoint() as endpoint:
        s3_client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint


@pytest.fixture(scope="module")
def corpus40(tmp_path_factory):
    root = tmp_path_factory.mktemp("c40")
    csv = make_corpus(root, n_files=40, seconds=(4.0, 12.0), sample_rate=44100)
    return root / "audio", csv


def _args(corpus, out, *more):
    return ["pack", corpus[0], out, "--metadata", corpus[1], "--shard-size", "400KB", *more]


@pytest.fixture(scope="module")
def reference(corpus40, tmp_path_factory):
    """name → bytes of the local pack of the same inputs (2 workers)."""
    out = tmp_path_factory.mktemp("ref") / "shards"
    r = _cli(*_args(corpus40, out, "--workers", "2"))
    assert r.returncode == 0, r.stderr
    files = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert len(files) > 10
    return files


def _pythonpath() -> str:
    """The checkout's shardkit and its cli/ folder as the shardkit_cli package (as test_remote does)."""
    import shardkit

    top = Path(shardkit.__file__).resolve().parent.parent
    link = Path(tempfile.gettempdir()) / f"shardkit-cli-{os.getpid()}"
    link.mkdir(exist_ok=True)
    if not (link / "shardkit_cli").exists():
        (link / "shardkit_cli").symlink_to(top / "cli")
    return os.pathsep.join([str(link), str(top)])


def _env(endpoint: str | None = None) -> dict[str, str]:
    env = {**os.environ, **CREDENTIALS, "PYTHONPATH": _pythonpath()}
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


def _argv(*args) -> list[str]:
    return [sys.executable, "-m", "shardkit_cli", *map(str, args)]


def _cli(*args, endpoint: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(_argv(*args), capture_output=True, text=True, env=_env(endpoint), timeout=240)


def _objects(endpoint: str, prefix: str) -> dict[str, bytes]:
    client = s3_client(endpoint)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]
    return {k[len(prefix):]: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys}


def _stamps(endpoint: str, prefix: str) -> dict[str, tuple]:
    client = s3_client(endpoint)
    return {o["Key"]: (o["LastModified"], o["ETag"])
            for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])}


def _one_line_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode not in (0, 3), r.stdout
    lines = [line for line in r.stderr.strip().splitlines() if line.strip() and not line.startswith("pack: ")]
    assert len(lines) == 1, r.stderr  # besides the plain progress lines of a run whose stderr is no terminal
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# -- a pack into a prefix is the local pack, object by object ------------------------------------------


def test_pack_to_s3_equals_the_local_pack_and_reads_back(s3, corpus40, reference, tmp_path):
    staging = tmp_path / "staging"
    r = _cli(*_args(corpus40, f"s3://{BUCKET}/a/", "--workers", "2", "--staging", staging), endpoint=s3)
    assert r.returncode == 0, r.stderr
    assert "complete" in r.stdout and f"s3://{BUCKET}/a/" in r.stdout
    assert _objects(s3, "a/") == reference
    assert not any(staging.iterdir()), "staging keeps nothing once the pack is complete"

    # read back through the storage seam, in a child (this process stays free of obstore's runtime)
    code = ("import sys, hashlib; from shardkit.dataset import ShardDataset\n"
            "def h(src):\n"
            "    d = hashlib.sha256()\n"
            "    for b in ShardDataset(src, batch_size=4, crop_seconds=1.0, seed=5, shuffle_window='400KB'):\n"
            "        d.update(repr(list(b['keys'])).encode()); d.update(b['audio'].numpy().tobytes())\n"
            "    return d.hexdigest()\n"
            "print(h(sys.argv[1]) == h(sys.argv[2]))")
    local = tmp_path / "local"
    local.mkdir()
    for name, data in reference.items():
        (local / name).write_bytes(data)
    got = subprocess.run([sys.executable, "-c", code, f"s3://{BUCKET}/a/", str(local)], capture_output=True,
                         text=True, env=_env(s3), timeout=240)
    assert got.stdout.strip() == "True", got.stderr


def test_a_rerun_of_a_complete_pack_uploads_nothing(s3, corpus40, reference, tmp_path):
    r = _cli(*_args(corpus40, f"s3://{BUCKET}/b/"), endpoint=s3)
    assert r.returncode == 0, r.stderr
    before = _stamps(s3, "b/")
    time.sleep(1.1)  # a new PUT would change LastModified
    r = _cli(*_args(corpus40, f"s3://{BUCKET}/b/"), endpoint=s3)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("already complete"), r.stdout
    assert _stamps(s3, "b/") == before
    assert _objects(s3, "b/") == reference


def test_large_shards_go_up_as_multipart_uploads(s3, corpus40, tmp_path):
    """Shards over SINGLE_PUT_MAX (lowered here) are multipart uploads (their ETag ends in -N) and the
    bytes are still the local pack's."""
    from shardkit import PackOptions, pack

    local = tmp_path / "local"
    pack(corpus40[0], local, metadata=corpus40[1], options=PackOptions(shard_size="7MB"))
    code = ("import sys, shardkit, shardkit.write.upload as u; u.SINGLE_PUT_MAX = 1 << 20; u.PART_BYTES = 5 << 20\n"
            "shardkit.pack(sys.argv[1], sys.argv[2], metadata=sys.argv[3], "
            "options=shardkit.PackOptions(shard_size='7MB'), staging=sys.argv[4])")
    r = subprocess.run([sys.executable, "-c", code, str(corpus40[0]), f"s3://{BUCKET}/m/", str(corpus40[1]),
                        str(tmp_path / "st")], capture_output=True, text=True, env=_env(s3), timeout=240)
    assert r.returncode == 0, r.stderr
    assert _objects(s3, "m/") == {p.name: p.read_bytes() for p in local.iterdir()}
    etags = {k.rsplit("/", 1)[1]: v[1] for k, v in _stamps(s3, "m/").items()}
    assert "-" in etags["shard-00000.tar"], "the first 7 MB shard went up in parts"
    assert "-" not in etags["manifest.json"]


# -- kill -9, lost staging, resume ------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["early", "after-first-shard", "staging-lost"])
def test_kill_9_during_a_two_worker_pack_then_rerun_gives_identical_objects(s3, corpus40, reference, tmp_path,
                                                                            when):
    prefix = f"k-{when}/"
    url, staging = f"s3://{BUCKET}/{prefix}", tmp_path / "staging"
    argv = _argv(*_args(corpus40, url, "--workers", "2", "--staging", staging))
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(s3),
                            start_new_session=True)
    client = s3_client(s3)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if when == "early" and (staging / "pack-state.json").exists():
            break
        keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])}
        if when != "early" and prefix + "shard-00001.index" in keys:
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert "manifest.json" not in _objects(s3, prefix), "the pack finished before it could be killed"
    if when == "staging-lost":  # another machine, or the temp folder was cleaned: resume from the prefix
        staging = tmp_path / "other-staging"
    r = _cli(*_args(corpus40, url, "--workers", "2", "--staging", staging), endpoint=s3)
    assert r.returncode == 0, r.stderr
    got = _objects(s3, prefix)
    assert got.keys() == reference.keys(), when
    assert got == reference, when


# -- conflicts: nothing is ever overwritten -------------------------------------------------------------


def test_a_different_pack_into_the_same_prefix_is_refused(s3, corpus40, reference):
    r = _cli(*_args(corpus40, f"s3://{BUCKET}/d/"), endpoint=s3)
    assert r.returncode == 0, r.stderr
    before = _stamps(s3, "d/")
    r = _cli("pack", corpus40[0], f"s3://{BUCKET}/d/", "--metadata", corpus40[1], "--shard-size", "300KB",
             endpoint=s3)
    _one_line_error(r, f"s3://{BUCKET}/d/", "packed from other sources or options")
    assert _stamps(s3, "d/") == before


def test_a_foreign_prefix_is_refused(s3, corpus40):
    s3_client(s3).put_object(Bucket=BUCKET, Key="f/notes.txt", Body=b"mine")
    r = _cli(*_args(corpus40, f"s3://{BUCKET}/f/"), endpoint=s3)
    _one_line_error(r, f"s3://{BUCKET}/f/", "not a shardkit shard set", "notes.txt")
    assert _objects(s3, "f/") == {"notes.txt": b"mine"}


def test_a_different_object_at_a_shard_key_is_a_named_error_and_stays(s3, corpus40, reference, tmp_path):
    """A budget stops the pack after a few shards; someone puts other bytes where the next shard goes;
    the re-run stops there, naming it, overwrites nothing, and finishes once it is gone."""
    url = f"s3://{BUCKET}/c/"
    r = _cli(*_args(corpus40, url, "--budget", "1.5MB"), endpoint=s3)
    assert r.returncode == 3, r.stderr
    done = sorted(k for k in _objects(s3, "c/") if k.endswith(".tar"))
    assert done and "pack-state.json" in _objects(s3, "c/")
    key = f"c/shard-{len(done):05d}.tar"
    client = s3_client(s3)
    client.put_object(Bucket=BUCKET, Key=key, Body=b"not this pack's shard" * 100)
    r = _cli(*_args(corpus40, url, "--budget", "1GB"), endpoint=s3)
    _one_line_error(r, f"s3://{BUCKET}/{key}: already holds a different object", "nothing was overwritten")
    assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"not this pack's shard" * 100
    client.delete_object(Bucket=BUCKET, Key=key)
    r = _cli(*_args(corpus40, url, "--budget", "1GB"), endpoint=s3)
    assert r.returncode == 0, r.stderr
    got = _objects(s3, "c/")
    assert {k: v for k, v in got.items() if k != "manifest.json"} == \
        {k: v for k, v in reference.items() if k != "manifest.json"}


# -- errors before anything is decoded ------------------------------------------------------------------


def test_a_missing_bucket_names_the_url(s3, corpus40, tmp_path):
    r = _cli(*_args(corpus40, "s3://no-such-bucket/x/", "--staging", tmp_path / "st"), endpoint=s3)
    _one_line_error(r, "s3://no-such-bucket/x/", "the bucket does not exist")
    assert not list((tmp_path / "st").iterdir()), "nothing was decoded or staged"


def test_an_unreachable_endpoint_fails_fast(corpus40, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    r = _cli(*_args(corpus40, f"s3://{BUCKET}/u/"), endpoint=f"http://127.0.0.1:{port}")
    _one_line_error(r, f"s3://{BUCKET}/u/", "cannot reach the storage endpoint")
    assert time.monotonic() - t0 < 90


def test_refused_credentials(s3, corpus40):
    server = proxy(s3, Faults(match=".", status=1.0, code=403))
    try:
        r = _cli(*_args(corpus40, f"s3://{BUCKET}/p/"), endpoint=url_of(server))
        _one_line_error(r, f"s3://{BUCKET}/p/", "access denied; check the credentials")
    finally:
        server.shutdown()


# -- a faulty network ----------------------------------------------------------------------------------


def _through(faults: Faults, s3: str, corpus, url: str, staging: Path, *more) -> subprocess.CompletedProcess:
    """A pack through the fault proxy: it ends complete, or with a named one-line error after which a
    re-run without faults completes."""
    server = proxy(s3, faults)
    try:
        r = _cli(*_args(corpus, url, "--staging", staging, *more), endpoint=url_of(server))
    finally:
        server.shutdown()
    if r.returncode != 0:
        _one_line_error(r, url)
        r = _cli(*_args(corpus, url, "--staging", staging, *more), endpoint=s3)
    assert r.returncode == 0, r.stderr
    return r


def test_http_500s_on_uploads_end_identical_or_named_and_resume(s3, corpus40, reference, tmp_path):
    faults = Faults(match=r"\.(tar|index|json)", status=0.3, seed=1)
    _through(faults, s3, corpus40, f"s3://{BUCKET}/n-500/", tmp_path / "st", "--workers", "2")
    assert faults.done > 0
    assert _objects(s3, "n-500/") == reference


def test_cut_bodies_while_resuming_and_hashing_end_identical(s3, corpus40, reference, tmp_path):
    """The re-run reads pack-state.json back and hashes an object that has no sha256 metadata (put there
    by another tool, with the right bytes): bodies cut mid-transfer resume or fail by name, never pass."""
    url, staging = f"s3://{BUCKET}/n-cut/", tmp_path / "st"
    r = _cli(*_args(corpus40, url, "--budget", "1.5MB", "--staging", staging), endpoint=s3)
    assert r.returncode == 3, r.stderr
    shutil.rmtree(staging)  # resume from the prefix: its state is read back through the proxy
    n = sum(k.endswith(".tar") for k in _objects(s3, "n-cut/"))
    name = f"shard-{n:05d}.tar"
    s3_client(s3).put_object(Bucket=BUCKET, Key="n-cut/" + name, Body=reference[name])
    faults = Faults(match=r"\.(tar|json)", cut=0.6, seed=2)
    _through(faults, s3, corpus40, url, staging, "--budget", "1GB")
    assert faults.done > 0
    got = _objects(s3, "n-cut/")
    assert {k: v for k, v in got.items() if k != "manifest.json"} == \
        {k: v for k, v in reference.items() if k != "manifest.json"}


def test_the_decoding_workers_are_spawned_not_forked(monkeypatch, tmp_path):
    """A pack into a prefix uses obstore in the pack process, whose runtime does not survive ``fork``:
    its decoding workers must stay ``spawn``-ed (they never touch obstore themselves)."""
    from shardkit.write import workers

    seen = []

    class Pool:
        def __init__(self, n, mp_context, **kw):
            seen.append(mp_context.get_start_method())
            raise RuntimeError("stop here")

    monkeypatch.setattr(workers, "ProcessPoolExecutor", Pool)
    with pytest.raises(RuntimeError, match="stop here"):
        next(workers.ordered_results([object()], 0, None, 2, tmp_path))
    assert seen == ["spawn"]


# -- the source stamps travel with the state; uploads run beside the pack loop --------------------------------


def test_a_resume_on_another_machine_refuses_changed_sources(s3, corpus40, tmp_path):
    """The stamps (size, mtime) of the sources go up with the state: a resume from another staging folder (another
    machine) refuses a source that changed, resumes unchanged ones, and a complete prefix holds no stamps."""
    src = tmp_path / "audio"
    shutil.copytree(corpus40[0], src)  # copy2: modification times kept, as cp -p / rsync -a do
    args = ["pack", src, f"s3://{BUCKET}/stamps/", "--metadata", corpus40[1], "--shard-size", "400KB"]
    r = _cli(*args, "--budget", "1.5MB", "--staging", tmp_path / "st1", endpoint=s3)
    assert r.returncode == 3, r.stderr  # stopped at the budget, resumable
    assert {"pack-state.json", "pack-sources.json"} <= set(_objects(s3, "stamps/"))
    victim = sorted(src.rglob("*.*"))[-1]
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    r = _cli(*args, "--staging", tmp_path / "st2", endpoint=s3)
    _one_line_error(r, victim.name, "changed since the interrupted pack started")
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    r = _cli(*args, "--staging", tmp_path / "st3", endpoint=s3)
    assert r.returncode == 0, r.stderr
    assert {"pack-state.json", "pack-sources.json"}.isdisjoint(_objects(s3, "stamps/"))
    assert "manifest.json" in _objects(s3, "stamps/")


def test_a_failed_background_upload_stops_the_pack_with_its_error_and_a_rerun_finishes(s3, corpus40, reference,
                                                                                    tmp_path):
    """Uploads run in a thread beside the pack loop: an upload refused mid-pack (HTTP 403 on one PUT of a
    shard) stops the pack with the one-line error; the shards still staged go up on the re-run."""
    url, staging = f"s3://{BUCKET}/bg/", tmp_path / "staging"
    faults = Faults(match=r"shard-0000[3-9]\.tar", status=1.0, code=403, only=1)
    front = proxy(s3, faults)
    try:
        r = _cli(*_args(corpus40, url, "--staging", staging), endpoint=url_of(front))
    finally:
        front.shutdown()
    _one_line_error(r, url, "access denied")
    assert "manifest.json" not in _objects(s3, "bg/")
    r = _cli(*_args(corpus40, url, "--staging", staging), endpoint=s3)
    assert r.returncode == 0, r.stderr
    assert _objects(s3, "bg/") == reference


def test_a_pack_killed_between_its_stamps_and_its_first_state_starts_afresh(s3, corpus40, reference):
    """begin() uploads pack-sources.json, then pack-state.json: a prefix holding only the former (kill -9 between
    the two, seen once under load) counts as empty."""
    s3_client(s3).put_object(Bucket=BUCKET, Key="only-stamps/pack-sources.json", Body=b"{}")
    r = _cli(*_args(corpus40, f"s3://{BUCKET}/only-stamps/"), endpoint=s3)
    assert r.returncode == 0, r.stderr
    assert _objects(s3, "only-stamps/") == reference
