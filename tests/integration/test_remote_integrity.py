"""Object storage has the local reader's integrity checks (docs/reading.md, "Shard sets on object storage"):
a shard replaced under a running reader is detected by its ETag (``If-Match`` on every ranged GET) and named
(or skipped and counted), and a manifest or index larger than ``MAX_OBJECT_BYTES`` is refused before its
body is read. Real servers on loopback: moto's S3 server and the HTTP range server."""

from __future__ import annotations

import shutil

import pytest
from remote_fixtures import CREDENTIALS, moto_endpoint, range_server, s3_client, upload, url_of

from shardkit.dataset import ShardDataset
from shardkit.errors import ShardReadError, UnsafeFileError
from shardkit.read import ShardSet
from shardkit.storage import base as storage_base
from shardkit.storage import obstore as locate
from shardkit.storage.object import ObjectStorage

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_endpoint() as endpoint:
        yield endpoint


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch):
    for k, v in CREDENTIALS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return s3_endpoint


def _other_bytes(path):
    """The shard's bytes with one byte of its first tar header changed: same size, every member's CRC-32 still
    right, so only the object's identity (its ETag) tells it from the original."""
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    return bytes(data)


def _reading(source, **kw):
    """An unshuffled epoch read batch by batch, no read-ahead: later shards are fetched only when reached."""
    ds = ShardDataset(source, batch_size=4, crop_seconds=1.0, shuffle=False, read_ahead=False, **kw)
    return ds, iter(ds)


def _replace_mid_epoch(source, replace, victim_keys, on_error):
    ds, it = _reading(source, on_error=on_error)
    first = next(it)
    assert not set(first["keys"]) & victim_keys  # the victim (the last shard) has not been read yet
    replace()
    batches = [first, *it]
    return ds, batches


def test_a_shard_replaced_in_s3_mid_epoch_is_named(s3_env, packed, tmp_path):
    upload(s3_env, packed, "shards", "swap-raise/")
    ss = ShardSet.open(packed)
    victim = ss.shard_names[-1]

    def replace():
        s3_client(s3_env).put_object(Bucket="shards", Key="swap-raise/" + victim, Body=_other_bytes(packed / victim))

    with pytest.raises(ShardReadError, match=rf"swap-raise/{victim}: sample .*the shard changed since the set was "
                                             "opened"):
        _replace_mid_epoch("s3://shards/swap-raise/", replace, set(), "raise")


def test_a_shard_replaced_in_s3_mid_epoch_is_skipped_and_counted(s3_env, packed):
    upload(s3_env, packed, "shards", "swap-skip/")
    ss = ShardSet.open(packed)
    victim = ss.shard_names[-1]
    victim_keys = {k for k, s in zip(ss.keys, ss.shard_id) if ss.shard_names[s] == victim}

    def replace():
        s3_client(s3_env).put_object(Bucket="shards", Key="swap-skip/" + victim, Body=_other_bytes(packed / victim))

    ds, batches = _replace_mid_epoch("s3://shards/swap-skip/", replace, victim_keys, "skip")
    skipped = {k for b in batches for k, v in zip(b["keys"], b["valid"].tolist()) if not v}
    assert skipped == victim_keys and ds.stats["skipped"] == len(victim_keys)
    _, local = _reading(packed)
    for b, lb in zip(batches, local):  # every other sample is the local read's
        keep = [j for j, k in enumerate(b["keys"]) if k not in victim_keys]
        assert (b["audio"][keep] == lb["audio"][keep]).all()


def test_a_file_replaced_behind_an_http_set_is_named(packed, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(packed, copy)
    victim = copy / ShardSet.open(copy).shard_names[-1]
    server = range_server(copy)

    def replace():
        new = victim.with_suffix(".new")
        new.write_bytes(_other_bytes(victim))
        new.replace(victim)  # a new file under the old name: another ETag

    try:
        with pytest.raises(ShardReadError, match="the shard changed since the set was opened"):
            _replace_mid_epoch(url_of(server) + "/", replace, set(), "raise")
    finally:
        server.shutdown()


def test_an_unchanged_set_reads_with_if_match_on_every_get(s3_env, packed):
    upload(s3_env, packed, "shards", "same/")
    st = ObjectStorage("s3://shards/same/")
    st.open_set("manifest.json")
    ss = ShardSet.open("s3://shards/same/", storage=st)
    assert set(st._tags) >= set(ss.shard_names) and all(st._tags[n] for n in ss.shard_names)
    assert ss.read_data_member(0) == ShardSet.open(packed).read_data_member(0)


def test_a_manifest_or_index_over_the_cap_is_refused_before_its_body(s3_env, packed, monkeypatch):
    upload(s3_env, packed, "shards", "cap/")
    monkeypatch.setattr(storage_base, "MAX_OBJECT_BYTES", 100)
    with pytest.raises(UnsafeFileError, match=r"s3://shards/cap/manifest.json: is \d+ bytes, more than the 100"):
        ObjectStorage("s3://shards/cap/").read_bytes("manifest.json")
    objects, _, _ = locate.read_metadata("s3://shards/cap/", None, "manifest.json")  # the metadata child's path
    assert isinstance(objects["manifest.json"], UnsafeFileError)
