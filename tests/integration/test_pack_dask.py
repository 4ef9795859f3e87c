"""``pack --engine dask`` (issue 11) on real Dask clusters on loopback: a LocalCluster of 2 worker
processes, a ``dask scheduler`` + ``dask worker`` pair started as subprocesses, a worker SIGKILLed
mid-pack, the driver SIGKILLed and re-run, rejects / --strict / --budget, and output to the S3 test
server. Every shard set is compared, file by file (sha256), with a local pack of the same inputs."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from audio_factory import make_corpus

import shardkit
from shardkit import PackOptions, pack
from shardkit.errors import PackError

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.timeout(300)

OPTS = PackOptions(shard_size="300KB")


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """(audio folder, CSV) of 16 short recordings, and (one more) with a garbage and an empty file."""
    root = tmp_path_factory.mktemp("dask-corpus")
    csv = make_corpus(root, n_files=16, seconds=(2.0, 6.0), sample_rate=44100)
    return root / "audio", csv


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask-bad")
    make_corpus(root, n_files=6, seconds=(1.0, 3.0))
    (root / "audio" / "amecro" / "broken.ogg").write_bytes(b"OggS" + os.urandom(3000))
    (root / "audio" / "barswa" / "empty.wav").write_bytes(b"")
    return root / "audio"


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("dask-ref") / "shards"
    pack(corpus[0], out, metadata=corpus[1], options=OPTS, workers=2)
    files = _hashes(out)
    assert len(files) > 8
    return files


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        yield c


def _env() -> dict[str, str]:
    top = Path(shardkit.__file__).resolve().parents[1]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(top / ".pyshim"), str(top),
                                                         os.environ.get("PYTHONPATH", "")])}


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "shardkit_cli", *map(str, args)]


# -- same bytes as a local pack --------------------------------------------------------------------------


def test_a_local_cluster_of_two_workers_gives_the_local_bytes(corpus, reference, client, tmp_path):
    r = pack(corpus[0], tmp_path / "d", metadata=corpus[1], options=OPTS, engine="dask", client=client)
    assert r.complete and _hashes(tmp_path / "d") == reference
    assert client.status == "running", "a client given is left open"


def test_a_user_engine_plugs_into_the_seam(corpus, reference, tmp_path):
    """An Engine that finishes sources in reverse order and hands them over in order (as a list): same bytes."""
    from shardkit.write.engines import Engine
    from shardkit.write.workers import process_source

    class Reversed(Engine):
        def results(self, items, start, ctx, out):
            done = {i: process_source(items[i], ctx) for i in reversed(range(start, len(items)))}
            return sorted(done.items())  # a list: no close() needed

    pack(corpus[0], tmp_path / "u", metadata=corpus[1], options=OPTS, engine=Reversed())
    assert _hashes(tmp_path / "u") == reference


def test_a_worker_sigkilled_mid_pack_changes_no_byte(corpus, reference, client, tmp_path):
    before = client.run(os.getpid)
    killed: list[int] = []

    def progress(p):
        if p.files_done == 3 and not killed:  # more tasks are in flight on both workers than the window's head
            killed.append(next(iter(before.values())))
            os.kill(killed[0], signal.SIGKILL)

    r = pack(corpus[0], tmp_path / "k", metadata=corpus[1], options=OPTS, engine="dask", client=client,
             progress=progress)
    assert killed and r.complete
    assert _hashes(tmp_path / "k") == reference
    client.wait_for_workers(2, timeout=60)
    assert killed[0] not in client.run(os.getpid).values(), "the nanny started a new worker"


def test_a_scheduler_and_worker_started_as_processes(corpus, reference, tmp_path):
    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--scheduler-file",
                               str(sched_file), "--host", "127.0.0.1", "--port", "0", "--no-dashboard"],
                              env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                       str(sched_file), "--host", "127.0.0.1", "--nworkers", "2", "--nthreads", "1",
                                       "--no-dashboard"], env=_env(), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        r = subprocess.run(_cli("pack", corpus[0], tmp_path / "f", "--metadata", corpus[1], "--shard-size", "300KB",
                                "--engine", "dask", "--scheduler-file", sched_file),
                           capture_output=True, text=True, env=_env(), timeout=240)
        assert r.returncode == 0, r.stderr
        assert "dask: " in r.stderr and "INFO" not in r.stderr
        assert _hashes(tmp_path / "f") == reference
        address = json.loads(sched_file.read_text())["address"]
        r = subprocess.run(_cli("pack", corpus[0], tmp_path / "a", "--metadata", corpus[1], "--shard-size", "300KB",
                                "--engine", "dask", "--scheduler", address),
                           capture_output=True, text=True, env=_env(), timeout=240)
        assert r.returncode == 0, r.stderr
        assert _hashes(tmp_path / "a") == reference
    finally:
        for p in reversed(procs):
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_the_driver_killed_then_rerun_resumes_with_the_same_bytes(corpus, reference, tmp_path):
    out = tmp_path / "driver"
    argv = _cli("pack", corpus[0], out, "--metadata", corpus[1], "--shard-size", "300KB", "--engine", "dask",
                "--workers", "2")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not (out / "shard-00000.index").exists():
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # the driver only: its local cluster's workers must follow it
    proc.wait()
    assert not (out / "manifest.json").exists(), "the pack finished before it could be killed"
    r = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=240)
    assert r.returncode == 0, r.stderr
    assert _hashes(out) == reference
    time.sleep(1)
    left = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert not left, f"processes of the killed pack outlived it: {left}"


def test_mel_u8_on_dask_workers_gives_the_local_bytes(bad_corpus, client, tmp_path):
    """The codec's once-per-process preparation (one torch thread) runs on the Dask workers too."""
    pytest.importorskip("torch")
    opts = PackOptions(shard_size="300KB", codec="mel-u8")
    pack(bad_corpus, tmp_path / "l", options=opts)
    pack(bad_corpus, tmp_path / "d", options=opts, engine="dask", client=client)
    assert _hashes(tmp_path / "d") == _hashes(tmp_path / "l")
    assert set(client.run(lambda: __import__("torch").get_num_threads()).values()) == {1}


def test_the_dashboard_serves_while_the_pack_runs(bad_corpus, tmp_path):
    """--dashboard: the local cluster serves Dask's dashboard on loopback; its link is handed to on_ready
    (the CLI prints it), and the page answers while the pack runs."""
    pytest.importorskip("bokeh")
    import re
    import urllib.request

    from shardkit.write import DaskEngine

    pages: list[tuple[str, int]] = []

    def on_ready(line: str) -> None:
        link = re.search(r"dashboard (http://127\.0\.0\.1:\d+/\S*)", line).group(1)
        with urllib.request.urlopen(link, timeout=30) as r:
            pages.append((line, r.status))

    pack(bad_corpus, tmp_path / "o", options=OPTS, engine=DaskEngine(workers=1, dashboard=True, on_ready=on_ready))
    assert len(pages) == 1 and pages[0][1] == 200 and pages[0][0].startswith("dask: 1 workers"), pages


# -- rejects, --strict, --budget as in a local pack -------------------------------------------------------


def test_rejects_are_those_of_a_local_pack(bad_corpus, client, tmp_path):
    local = pack(bad_corpus, tmp_path / "l", options=OPTS)
    dask = pack(bad_corpus, tmp_path / "d", options=OPTS, engine="dask", client=client)
    assert len(local.rejects) == 2 and dask.rejects == local.rejects
    assert _hashes(tmp_path / "d") == _hashes(tmp_path / "l")


def test_strict_stops_at_the_same_source_with_the_same_message(bad_corpus, client, tmp_path):
    with pytest.raises(PackError) as local:
        pack(bad_corpus, tmp_path / "l", options=OPTS, strict=True)
    with pytest.raises(PackError) as dask:
        pack(bad_corpus, tmp_path / "d", options=OPTS, strict=True, engine="dask", client=client)
    assert str(dask.value) == str(local.value) and "--strict" in str(dask.value)
    assert _hashes(tmp_path / "d") == _hashes(tmp_path / "l")


def test_budget_stops_and_a_larger_one_finishes_as_locally(corpus, reference, client, tmp_path):
    local = pack(corpus[0], tmp_path / "l", metadata=corpus[1], options=OPTS, budget="1MB")
    dask = pack(corpus[0], tmp_path / "d", metadata=corpus[1], options=OPTS, budget="1MB", engine="dask",
                client=client)
    assert not dask.complete and dask.more_bytes_needed == local.more_bytes_needed > 0
    assert _hashes(tmp_path / "d") == _hashes(tmp_path / "l")
    pack(corpus[0], tmp_path / "l", metadata=corpus[1], options=OPTS, budget="1GB")
    done = pack(corpus[0], tmp_path / "d", metadata=corpus[1], options=OPTS, budget="1GB", engine="dask",
                client=client)
    assert done.complete and done.resumed and _hashes(tmp_path / "d") == _hashes(tmp_path / "l")
    shards = {k: v for k, v in reference.items() if k != "manifest.json"}  # the manifest records the budget
    assert {k: v for k, v in _hashes(tmp_path / "d").items() if k != "manifest.json"} == shards


# -- errors ------------------------------------------------------------------------------------------------


def test_without_dask_the_cli_says_how_to_install_it(corpus, tmp_path):
    code = ("import sys; sys.modules['distributed'] = None; sys.argv = ['shardkit'] + sys.argv[1:]\n"
            "from shardkit_cli.main import main; main()")
    r = subprocess.run([sys.executable, "-c", code, "pack", str(corpus[0]), str(tmp_path / "o"), "--engine", "dask"],
                       capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: --engine dask needs Dask's distributed scheduler, which is not installed: pip install 'shardkit[dask]'"]
    assert not (tmp_path / "o").exists()


def test_workers_that_cannot_import_shardkit_are_named(corpus, tmp_path):
    with distributed.LocalCluster(processes=True, n_workers=1, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        c.run(lambda: sys.modules.__setitem__("shardkit.write.dask_engine", None))
        with pytest.raises(PackError, match=r"a Dask worker cannot import shardkit.*PYTHONPATH"):
            pack(corpus[0], tmp_path / "o", metadata=corpus[1], options=OPTS, engine="dask", client=c)
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_an_unreachable_scheduler_is_one_line(corpus, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = subprocess.run(_cli("pack", corpus[0], tmp_path / "o", "--engine", "dask", "--scheduler",
                            f"tcp://127.0.0.1:{port}"), capture_output=True, text=True, timeout=200,
                       env={**_env(), "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
    assert r.returncode not in (0, 3) and len(lines) == 1, r.stderr
    assert "cannot reach the Dask scheduler" in lines[0] and f"127.0.0.1:{port}" in lines[0]


# -- into a bucket ---------------------------------------------------------------------------------------


def test_a_pack_into_the_s3_test_server_holds_the_local_bytes(corpus, reference, tmp_path):
    """Samples travel over Dask's connections, not a shared folder: OUT can be a prefix (the pack runs in
    a child process: this one never starts obstore's runtime)."""
    pytest.importorskip("obstore")
    from remote_fixtures import CREDENTIALS, moto_endpoint, s3_client

    with moto_endpoint() as endpoint:
        client = s3_client(endpoint)
        client.create_bucket(Bucket="dask")
        r = subprocess.run(_cli("pack", corpus[0], "s3://dask/set/", "--metadata", corpus[1], "--shard-size", "300KB",
                                "--engine", "dask", "--workers", "2", "--staging", tmp_path / "staging"),
                           capture_output=True, text=True, timeout=240,
                           env={**_env(), **CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})
        assert r.returncode == 0, r.stderr
        objects = client.list_objects_v2(Bucket="dask", Prefix="set/")["Contents"]
        got = {o["Key"][4:]: hashlib.sha256(client.get_object(Bucket="dask", Key=o["Key"])["Body"].read()).hexdigest()
               for o in objects}
        assert got == reference


# -- issue 22: scheduler files that lead nowhere, a scheduler that dies ---------------------------------


@pytest.mark.parametrize("text", ["not json {", "{}", "", "[1, 2]", '{"address": 5}'])
def test_a_scheduler_file_that_names_no_scheduler_is_one_line_at_once(corpus, tmp_path, text):
    """issue 22 item 9: not JSON, ``{}``, empty: a one-line error naming the file, at once (was a traceback
    after 60 s)."""
    sched_file = tmp_path / "scheduler.json"
    sched_file.write_text(text)
    started = time.monotonic()
    r = subprocess.run(_cli("pack", corpus[0], tmp_path / "o", "--engine", "dask", "--scheduler-file", sched_file),
                       capture_output=True, text=True, env=_env(), timeout=120)
    lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert str(sched_file) in lines[0] and "dask scheduler --scheduler-file" in lines[0], lines[0]
    assert time.monotonic() - started < 30 and not (tmp_path / "o" / "manifest.json").exists()


def test_the_scheduler_dying_mid_pack_is_named_not_a_source(corpus, tmp_path):
    from shardkit.write.dask_engine import DaskEngine

    """issue 22 item 17: the scheduler SIGKILLed mid-pack is a PackError about the scheduler (was: blamed on
    the source whose task was awaited); finished shards are kept."""
    sched_file = tmp_path / "scheduler.json"
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--scheduler-file",
                              str(sched_file), "--host", "127.0.0.1", "--port", "0", "--no-dashboard"],
                             env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                               str(sched_file), "--host", "127.0.0.1", "--nworkers", "1", "--nthreads", "1",
                               "--no-dashboard"], env=_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)

        def progress(p):
            if p.files_done == 3 and sched.poll() is None:
                os.killpg(sched.pid, signal.SIGKILL)
                sched.wait()

        with pytest.raises(PackError) as caught:
            pack(corpus[0], tmp_path / "o", metadata=corpus[1], options=OPTS,
                 engine=DaskEngine(scheduler_file=sched_file), progress=progress)
        message = str(caught.value)
        assert "scheduler" in message and "re-run the same command" in message, message
        assert message.startswith("lost the Dask scheduler") and ".ogg" not in message.split("(")[0], message
    finally:
        for p in (worker, sched):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
