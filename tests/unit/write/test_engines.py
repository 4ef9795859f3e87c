"""The engine seam of pack (shardkit.write.engines) and the Dask engine's checks, without a cluster (the
clusters are in tests/integration/test_pack_dask.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from audio_factory import make_file

import shardkit
from shardkit.encode.wav16 import Wav16
from shardkit.errors import UsageError
from shardkit.ingest.sources import discover
from shardkit.write.engines import Engine, LocalEngine, make_engine
from shardkit.write.options import PackOptions
from shardkit.write.workers import _Context, process_source

TOP = Path(shardkit.__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TOP / ".pyshim"), str(TOP)])}


@pytest.fixture()
def items(tmp_path):
    for n in range(4):
        make_file(tmp_path / "src" / f"f{n}.wav", seconds=0.5 + n * 0.25, seed=n)
    found, _ = discover(tmp_path / "src", None)
    return found


def test_make_engine_names_and_objects():
    assert isinstance(make_engine("local", 2), LocalEngine) and make_engine("local", 2).workers == 2
    eng = LocalEngine(3)
    assert make_engine(eng, 1) is eng
    pytest.importorskip("distributed")
    from shardkit.write.dask_engine import DaskEngine

    assert isinstance(make_engine("dask", 2), DaskEngine)


@pytest.mark.parametrize("args, match", [
    (("spark", 1), "engine must be one of local, dask"),
    (("local", 0), "workers must be a positive integer"),
    (("local", True), "workers must be a positive integer"),
    (("local", 1, object()), "client= is a Dask client: pass engine='dask'"),
    ((LocalEngine(), 1, object()), "client= goes with engine='dask'"),
])
def test_make_engine_refuses_what_does_not_fit(args, match):
    with pytest.raises(UsageError, match=match):
        make_engine(*args)


def test_the_local_engine_yields_process_source_in_order(items, tmp_path):
    opts = PackOptions()
    ctx = _Context(opts, opts.make_codec(), {})
    got = list(LocalEngine(1).results(items, 1, ctx, tmp_path))
    assert [i for i, _ in got] == [1, 2, 3]
    assert [r[0].wav for _, r in got] == [process_source(items[i], ctx)[0].wav for i in (1, 2, 3)]
    assert isinstance(LocalEngine(), Engine)


def test_dask_engine_checks_its_arguments(tmp_path):
    pytest.importorskip("distributed")
    from shardkit.write.dask_engine import DaskEngine

    with pytest.raises(UsageError, match="give one of"):
        DaskEngine(scheduler="tcp://127.0.0.1:8786", scheduler_file=tmp_path / "s.json")
    with pytest.raises(UsageError, match=r"e\.g\. tcp://"):
        DaskEngine(scheduler="127.0.0.1:8786")
    with pytest.raises(UsageError, match="no such scheduler file"):
        DaskEngine(scheduler_file=tmp_path / "missing.json")
    with pytest.raises(UsageError, match=r"must be a distributed\.Client"):
        DaskEngine("tcp://127.0.0.1:8786")
    with pytest.raises(UsageError, match="workers must be"):
        DaskEngine(workers=0)


class _Counting(Wav16):
    prepared = 0

    def prepare_worker(self) -> None:
        type(self).prepared += 1


def test_the_dask_task_prepares_the_codec_once_per_process_and_is_process_source(items):
    from shardkit.write.dask_engine import run_source

    opts = PackOptions()
    codec = _Counting(opts.sample_rate, opts.channels)
    ctx = _Context(opts, codec, {})
    got = [run_source(it, ctx) for it in items]
    assert _Counting.prepared == 1
    assert [r[0].wav for r in got] == [process_source(it, ctx)[0].wav for it in items]


def test_without_dask_the_library_says_how_to_install_it(items, tmp_path):
    code = ("import sys; sys.modules['distributed'] = None\n"
            "import shardkit\n"
            "try:\n"
            "    shardkit.pack(sys.argv[1], sys.argv[2], engine='dask')\n"
            "except shardkit.UsageError as e:\n"
            "    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(Path(items[0].path).parent), str(tmp_path / "o")],
                       capture_output=True, text=True, env=_env(), timeout=120)
    assert "pip install 'shardkit[dask]'" in r.stdout, r.stderr
    assert not (tmp_path / "o").exists()


def test_the_cli_keeps_dask_options_for_the_dask_engine(items, tmp_path):
    r = subprocess.run([sys.executable, "-m", "shardkit_cli", "pack", str(Path(items[0].path).parent),
                        str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:1"],
                       capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 2 and "go with --engine dask" in r.stderr


def test_the_dask_task_returns_a_streamed_source_made_whole(items, monkeypatch):
    """A long source comes out of process_source as lazily made samples (bounded local memory); the Dask
    task must make them before its result travels to the driver, with the same bytes."""
    from shardkit.ingest import decode
    from shardkit.write.dask_engine import run_source

    ctx = _Context(PackOptions(mode="segments", segment_seconds=0.25), Wav16(32000, 1), {})
    whole = [[s.wav for s in process_source(it, ctx)] for it in items]
    monkeypatch.setattr(decode, "STREAM_ABOVE_BYTES", 0)  # every source is "long": streamed
    assert not isinstance(process_source(items[-1], ctx), list)
    got = [run_source(it, ctx) for it in items]
    assert all(isinstance(r, list) for r in got)
    assert [[bytes(s.wav) for s in r] for r in got] == [[bytes(w) for w in ws] for ws in whole]
