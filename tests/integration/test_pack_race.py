"""Two packs of the same inputs started into one OUT at (nearly) the same time, as two CLI processes:
one packs, the other is refused by name (another pack, its pid) or finds the pack complete; never a
traceback, a misleading "free space" message or a damaged set — OUT ends byte-identical to a pack
made alone."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "shardkit_cli", *map(str, args)]


@pytest.fixture(scope="module")
def alone(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("race") / "alone"
    subprocess.run(_cli("pack", corpus[0], out, "--metadata", corpus[1], "--shard-size", "300KB"), check=True,
                   capture_output=True)
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.mark.parametrize("stagger", [0.0, 0.05, 0.3, 1.0])
def test_two_packs_race_into_one_out(corpus, alone, tmp_path, stagger):
    out = tmp_path / "out"
    argv = _cli("pack", corpus[0], out, "--metadata", corpus[1], "--shard-size", "300KB")
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(stagger)
    second = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = [(*p.communicate(timeout=300), p.returncode) for p in (first, second)]
    for _stdout, stderr, code in results:
        assert "Traceback" not in stderr and "free space" not in stderr, stderr
        assert code == 0 or "another pack (pid" in stderr, (code, stderr)
    assert any(code == 0 and stdout.startswith("complete") for stdout, _, code in results)
    assert {p.name: p.read_bytes() for p in sorted(out.iterdir())} == alone
