"""Dataset versions end to end (issue 12): the CLI's update / log / diff / compact / ls, and a derived
set read by a DataLoader with 2 worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from versions_factory import first_pack_and_season, samples

import shardkit


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shardkit_cli", *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("versions")
    env = {**os.environ, "SHARDKIT_CACHE_DIR": str(root / "cache")}
    csv_path, _ = first_pack_and_season(root)
    r = run("update", str(root / "audio"), str(root / "v1"), str(root / "v2"), "--metadata", str(csv_path),
            "--note", "season 2", env=env)
    assert r.returncode == 0, r.stderr
    assert "3 added, 1 audio changed, 1 removed, 1 relabelled" in r.stdout
    return root, csv_path, env


def test_cli_log_diff_ls_compact(sets):
    root, _, env = sets
    log = run("log", str(root / "v2"), env=env)
    assert log.returncode == 0 and len(log.stdout.splitlines()) == 2 and "season 2" in log.stdout
    diff = run("diff", str(root / "v1"), str(root / "v2"), "--json", env=env)
    doc = json.loads(diff.stdout)
    assert [doc[k]["sources"] for k in ("added", "removed", "changed", "relabelled")] == [3, 1, 1, 1]
    ls = run("ls", str(root / "v2"), env=env)
    assert len(ls.stdout.splitlines()) == len(samples(root / "v2"))
    assert run("verify", str(root / "v2"), env=env).returncode == 0
    assert run("compact", str(root / "v2"), str(root / "v2c"), env=env).returncode == 0
    again = run("compact", str(root / "v2"), str(root / "v2c"), env=env)  # issue 22 item 16
    assert again.returncode == 0 and again.stdout.startswith("already complete: "), again.stdout + again.stderr
    assert samples(root / "v2c") == samples(root / "v2")


def test_a_derived_set_in_a_dataloader_with_two_workers(sets):
    root, _, env = sets
    os.environ["SHARDKIT_CACHE_DIR"] = env["SHARDKIT_CACHE_DIR"]
    ds = shardkit.ShardDataset(root / "v2", batch_size=4, crop_seconds=0.5, shuffle=True, seed=1)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    keys, labels = [], {}
    for batch in loader:
        keys += list(batch["keys"])
        for k, row in zip(batch["keys"], batch["labels"]):
            labels[k] = ds.classes[int(row.argmax())]
    want = samples(root / "v2")
    assert sorted(set(keys)) == sorted(want)
    assert all(labels[k] == want[k][0] for k in want if want[k][0] and not want[k][1])


def test_cli_update_refuses_other_pack_options_by_name(sets):
    root, csv_path, env = sets
    r = run("update", str(root / "audio"), str(root / "v2"), str(root / "v9"), "--metadata", str(csv_path),
            "--sample-rate", "22050", env=env)
    assert r.returncode != 0 and "sample_rate=16000" in r.stderr and "22050" in r.stderr
    assert len([x for x in r.stderr.splitlines() if x.strip()]) == 1, r.stderr
