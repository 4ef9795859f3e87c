"""``az://`` end to end against Azurite, Microsoft's Azure Storage emulator, on loopback (optional: it is a Node
program, ``npm install azurite``; the test runs when ``azurite-blob`` is on PATH or ``SHARDKIT_AZURITE`` names it,
and is skipped otherwise). A pack into ``az://`` writes the local pack's bytes, a dataset reads the local epoch
from it, and a blob replaced under a reader is named (Azure ETags with ``If-Match``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from email.utils import formatdate

import pytest

from shardkit import PackOptions, pack
from shardkit.dataset import ShardDataset
from shardkit.errors import ShardReadError
from shardkit.read import ShardSet

pytestmark = pytest.mark.timeout(240)

#: Azurite's well-known development account and key (public, documented by Microsoft)
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _create_container(endpoint: str, name: str) -> None:
    """``PUT ?restype=container`` signed with the account key (SharedKey): obstore does not create containers."""
    date, version = formatdate(usegmt=True), "2021-08-06"
    text = ("PUT" + "\n" * 12 + f"x-ms-date:{date}\nx-ms-version:{version}\n"
            f"/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container")
    sig = base64.b64encode(hmac.new(base64.b64decode(KEY), text.encode(), hashlib.sha256).digest()).decode()
    headers = {"x-ms-date": date, "x-ms-version": version, "Authorization": f"SharedKey {ACCOUNT}:{sig}",
               "Content-Length": "0"}
    req = urllib.request.Request(f"{endpoint}/{name}?restype=container", method="PUT", headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 201


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    exe = os.environ.get("SHARDKIT_AZURITE") or shutil.which("azurite-blob")
    if not exe:
        pytest.skip("Azurite is not installed (npm install azurite; put azurite-blob on PATH or in SHARDKIT_AZURITE)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
                             "--silent", "--skipApiVersionCheck", "--disableTelemetry"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("Azurite did not start")
                time.sleep(0.2)
        endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
        _create_container(endpoint, "shards")
        yield {"account_name": ACCOUNT, "account_key": KEY, "endpoint": endpoint}
    finally:
        proc.terminate()
        proc.wait(30)


def _epoch(source, **kw):
    ds = ShardDataset(source, batch_size=4, crop_seconds=1.0, seed=5, shuffle_window="400KB", **kw)
    return [(list(b["keys"]), b["audio"].numpy().tobytes(), b["valid"].tolist()) for b in ds], ds


def test_pack_into_az_and_read_it_back(azurite, corpus, packed, tmp_path):
    import obstore

    from shardkit.storage.obstore import make_store

    url = "az://shards/set/"
    pack(corpus[0], url, metadata=corpus[1], options=PackOptions(shard_size="300KB"), storage_options=azurite,
         staging=tmp_path / "staging")
    store = make_store(url, azurite)
    names = sorted(str(o["path"]).rsplit("/", 1)[-1] for batch in obstore.list(store) for o in batch)
    assert names == sorted(p.name for p in packed.iterdir())
    for name in names:
        assert bytes(obstore.get(store, name).bytes()) == (packed / name).read_bytes(), name
    assert _epoch(url, storage_options=azurite)[0] == _epoch(packed)[0]

    victim = ShardSet.open(packed).shard_names[-1]
    ds = ShardDataset(url, batch_size=4, crop_seconds=1.0, shuffle=False, read_ahead=False, storage_options=azurite)
    batches = iter(ds)
    next(batches)
    data = bytearray((packed / victim).read_bytes())
    data[0] ^= 1  # every member's CRC-32 still right: only the blob's ETag tells
    obstore.put(store, victim, bytes(data))
    with pytest.raises(ShardReadError, match="the shard changed since the set was opened"):
        list(batches)
