"""No traceback from any CLI command, whatever the input: each odd input of tests/cli_cases.py exits
non-zero with a one-line message (``error: …``, or click's ``Error: …`` for a usage error), and the
CLEAN ones (odd but valid) exit without a traceback. All cases run in one CLI process (a subprocess
of this test) to keep the suite quick."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_cases import CASES, CLEAN

from shardkit.read import ShardSet

HERE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results(packed, corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("odd")
    zero = root / "zero"
    shutil.copytree(packed, zero)
    doc = json.loads((zero / "manifest.json").read_text())
    for e in doc["shards"]:
        (zero / e["name"]).unlink()
        (zero / e["index"]).unlink()
    doc["shards"] = []
    (zero / "manifest.json").write_text(json.dumps(doc))
    (root / "empty").mkdir()
    (root / "afile").write_text("x")
    (root / "badjson").mkdir()
    (root / "badjson" / "manifest.json").write_text("{")
    (root / "bad.csv").write_bytes(b"\xff\xfe\x00garbage\x00\xd8")
    (root / "nofn.csv").write_text("a,b\n1,2\n")
    with ShardSet.open(packed) as ss:
        key = ss.keys[0]
    todo = {}
    for n, (name, argv) in enumerate({**CASES, **CLEAN}.items()):
        tmp = root / f"t{n}"
        tmp.mkdir()
        sub = dict(set=packed, key=key, zero=zero, empty=root / "empty", file=root / "afile", audio=corpus[0],
                   csv=corpus[1], badjson=root / "badjson", badcsv=root / "bad.csv", nofn=root / "nofn.csv",
                   tmp=tmp, missing=tmp / "nope")
        todo[name] = [a.format(**sub) for a in argv]
    (root / "in.json").write_text(json.dumps(todo))
    before = sorted(p.name for p in packed.iterdir())
    subprocess.run([sys.executable, str(HERE / "cli_cases.py"), str(root / "in.json"), str(root / "out.json")],
                   check=True, cwd=root, timeout=600)
    assert sorted(p.name for p in packed.iterdir()) == before  # nothing written into or deleted from the set
    assert not (root / "ftp:").exists()
    return json.loads((root / "out.json").read_text())


@pytest.mark.parametrize("name", list(CASES))
def test_odd_input_fails_with_one_line(results, name):
    r = results[name]
    assert "Traceback" not in r["stderr"], r["stderr"]
    assert r["code"] != 0, r
    lines = [line for line in r["stderr"].splitlines() if line.strip()]
    assert lines, r
    message = [line for line in lines if line.startswith(("error:", "Error:"))]
    assert len(message) == 1, lines


@pytest.mark.parametrize("name", list(CLEAN))
def test_odd_but_valid_input_no_traceback(results, name):
    assert "Traceback" not in results[name]["stderr"], results[name]["stderr"]
