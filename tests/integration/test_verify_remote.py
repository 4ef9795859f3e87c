"""verify of a shard set on object storage runs the same checks as for a folder (one code path through
Storage): forged sets the reader refuses, and forged tar headers, are reported from an s3:// URL too."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from forge import edit_index, edit_shard, set_header
from remote_fixtures import CREDENTIALS, moto_endpoint, upload

import shardkit
from shardkit import ShardSet, ShardSetWriter
from shardkit.format import ShardIndex

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def s3():
    with moto_endpoint() as endpoint:
        yield endpoint


@pytest.fixture()
def env(s3, monkeypatch):
    for k, v in {**CREDENTIALS, "AWS_ENDPOINT_URL": s3}.items():
        monkeypatch.setenv(k, v)
    return s3


@pytest.fixture()
def small(tmp_path):
    root = tmp_path / "set"
    with ShardSetWriter(root, sample_rate=16000, vocabulary=["a"]) as w:
        for k in range(3):
            w.write(np.full(1600, k, np.int16), key=f"src/k{k}", primary_label="a")
    return root


def _symlink_member(root):
    off = ShardIndex.load(root / "shard-00000.index").columns["wav_offset"][1] - 512
    edit_shard(root, 0, lambda data: set_header(data, off, typeflag=b"2", linkname="/etc/passwd"))


@pytest.mark.parametrize("forge_it,expected", [
    (lambda r: None, None),
    (lambda r: edit_index(r, 0, lambda i: i.columns["label"].__setitem__(1, 5)), "outside the vocabulary"),
    (lambda r: edit_index(r, 0, lambda i: i.columns["meta_offset"].__setitem__(1, -3)), "negative"),
    (_symlink_member, "symlink, not a regular file"),
], ids=["clean", "label", "negative offset", "symlink member"])
def test_verify_of_a_url_reports_what_verify_of_a_folder_does(env, small, tmp_path, forge_it, expected):
    forge_it(small)
    prefix = f"{tmp_path.name}/"
    upload(env, small, "forged", prefix)
    remote, local = shardkit.verify(f"s3://forged/{prefix}"), shardkit.verify(small)
    assert [str(p) for p in remote.problems] == [str(p) for p in local.problems]
    if expected is None:
        assert remote.ok and remote.bytes_checked == local.bytes_checked > 0
    else:
        assert any(expected in p.what and p.key == "src/k1" for p in remote.problems), remote.problems
    if expected and "symlink" not in expected:
        with pytest.raises(shardkit.ShardkitError):
            ShardSet.open(f"s3://forged/{prefix}")
    shutil.rmtree(small)
