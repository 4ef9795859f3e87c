"""Object storage against servers that misbehave (issue 22 items 5, 7, 14), all real HTTP servers on
127.0.0.1 in threads of this process: an S3 endpoint that redirects to another host (the session token must
not follow), a server that trickles its bytes (a read gives up in bounded time and names the endpoint), and
a server that ignores ``Range`` (reads and ``verify`` still see the right bytes)."""

from __future__ import annotations

import http.server
import os
import threading
import time
from datetime import timedelta

import pytest
from remote_fixtures import no_range_server, serve, url_of

import shardkit
import shardkit.format
from benchmarks.loopback import _RangeFiles
from shardkit.errors import ShardReadError, StorageError
from shardkit.read import ShardSet
from shardkit.storage import obstore as locate

pytestmark = pytest.mark.timeout(240)


class _Seen(http.server.BaseHTTPRequestHandler):
    """Records every request's path and headers; answers 404."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET


class _Redirect(_Seen):
    """Answers every request with a 307 to the same path on ``server.target``."""

    def do_GET(self) -> None:
        self.server.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        self.send_response(307)
        self.send_header("Location", self.server.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET


@pytest.fixture
def redirecting_endpoint(monkeypatch):
    target = serve(_Seen, seen=[])
    other_host = f"http://localhost:{target.server_address[1]}"  # another host name than the endpoint's
    endpoint = serve(_Redirect, seen=[], target=other_host)
    for k, v in {"AWS_ACCESS_KEY_ID": "AKIATESTTESTTEST", "AWS_SECRET_ACCESS_KEY": "secret",
                 "AWS_SESSION_TOKEN": "SESSION-TOKEN-0123", "AWS_REGION": "us-east-1",
                 "AWS_ENDPOINT_URL": url_of(endpoint)}.items():
        monkeypatch.setenv(k, v)
    yield endpoint, target, other_host
    endpoint.shutdown()
    target.shutdown()


def test_credentials_never_follow_a_redirect_to_another_host(redirecting_endpoint):
    endpoint, target, _ = redirecting_endpoint
    with pytest.raises(StorageError, match=rf"redirect.*localhost:{target.server_address[1]}") as err:
        ShardSet.open("s3://bucket/set/")
    assert "Traceback" not in str(err.value) and url_of(endpoint) in str(err.value)
    leaked = [h for _, _, h in target.seen if "x-amz-security-token" in h or "authorization" in h]
    assert leaked == []


class _Trickle(_RangeFiles):
    """A file server that sends shard bodies 100 bytes every 0.2 s (metadata at full speed); counts them."""

    def _send(self, fd: int, start: int, n: int) -> None:
        if not self.path.endswith(".tar"):
            return super()._send(fd, start, n)
        with self.server.lock:
            self.server.trickled += 1
        data = os.pread(fd, n, start)
        for i in range(0, n, 100):
            try:
                self.wfile.write(data[i:i + 100])
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.2)


def test_the_documented_bound_is_the_default():
    assert locate.DEFAULT_CLIENT["timeout"] == timedelta(seconds=30)
    assert locate.DEFAULT_RETRY["retry_timeout"] == timedelta(seconds=30)
    text = open(os.path.join(os.path.dirname(shardkit.__file__), "..", "docs", "reading.md")).read()
    assert "30 s" in text and "60 s" in text


def test_a_trickling_server_is_given_up_on_and_named(packed):
    server = serve(_Trickle, root=str(packed), delay=0.0, trickled=0, lock=threading.Lock())
    two = timedelta(seconds=2)
    quick = {"client_options": {"timeout": two}, "retry_config": {"retry_timeout": two}}
    try:
        ds = shardkit.ShardDataset(url_of(server) + "/", storage_options=quick, batch_size=8, crop_seconds=0.5,
                                   shuffle=False)
        with pytest.raises(ShardReadError) as err:
            next(iter(ds))
        message = str(err.value)
        assert url_of(server) in message and "2 s" in message and "slow" in message, message
        assert "truncated" not in message and "re-pack" not in message, message
        # the whole batch waited for one stalled request (and its retry), not one per sample
        assert server.trickled <= 3, server.trickled
    finally:
        server.shutdown()


def test_a_server_that_ignores_range_reads_and_verifies(packed):
    server = no_range_server(packed)
    try:
        url = url_of(server) + "/"
        assert shardkit.verify(url).ok
        remote, local = ShardSet.open(url), ShardSet.open(packed)
        rows = (0, len(local) // 2, len(local) - 1)
        assert all(remote.read_data_member(i) == local.read_data_member(i) for i in rows)
    finally:
        server.shutdown()


def _epoch(source, **kw):
    ds = shardkit.ShardDataset(source, batch_size=4, crop_seconds=0.5, seed=1, **kw)
    return [(list(b["keys"]), b["audio"].numpy().tobytes(), bool(b["valid"].all())) for b in ds]


def test_a_file_planted_in_cache_dir_is_not_served(packed, tmp_path):
    from remote_fixtures import range_server

    server = range_server(packed)
    cache = tmp_path / "cache"
    cache.mkdir()
    for e in shardkit.format.Manifest.load(packed).shards:  # other audio under every entry's name, at the shard's size
        (cache / f"{e.sha256}.tar").write_bytes(b"\0" * e.bytes)
    try:
        assert _epoch(url_of(server) + "/", cache_dir=cache) == _epoch(packed)
    finally:
        server.shutdown()


def test_a_full_cache_disk_falls_back_to_uncached_reads(packed, tmp_path, monkeypatch, caplog):
    import errno
    import logging

    from remote_fixtures import range_server

    from shardkit.storage.cache import store as cache_mod

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_mod.os, "fsync", full)
    server = range_server(packed)
    try:
        with caplog.at_level(logging.WARNING):
            got = _epoch(url_of(server) + "/", cache_dir=tmp_path / "cache", on_error="skip")
    finally:
        server.shutdown()
    assert got == _epoch(packed)  # every row read, none skipped
    falls = [r.getMessage() for r in caplog.records if "without the cache" in r.getMessage()]
    assert len(falls) == 1 and "No space left" in falls[0], falls
