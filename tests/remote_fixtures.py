"""Real servers on loopback for the object-storage tests: an S3 server (moto), a fault-injecting HTTP
proxy in front of it, and a plain HTTP server with Range support.

Objects are uploaded with boto3 (pure Python): the test process must not start obstore's runtime
itself, or forked DataLoader workers started later by a test would hang (docs/reading.md).
"""

from __future__ import annotations

import http.server
import random
import re
import socketserver
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
               "AWS_DEFAULT_REGION": "us-east-1"}


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(handler: type[http.server.BaseHTTPRequestHandler], **attrs: object) -> _Server:
    """Start ``handler`` on 127.0.0.1, a free port, in a daemon thread; attributes go on the server."""
    server = _Server(("127.0.0.1", 0), handler)
    for k, v in attrs.items():
        setattr(server, k, v)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def url_of(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def upload(endpoint: str, folder: Path, bucket: str, prefix: str) -> None:
    client = s3_client(endpoint)
    try:
        client.create_bucket(Bucket=bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    for f in sorted(folder.iterdir()):
        client.upload_file(str(f), bucket, prefix + f.name)


# -- a fault-injecting proxy ---------------------------------------------------------------------------


@dataclass
class Faults:
    """What the proxy does to requests for object names matching ``match`` (seeded): ``cut`` (fraction of
    GET bodies cut short), ``status`` (fraction answered with HTTP ``code``), ``delay`` (seconds before the
    first byte of every answer), ``only`` (at most this many faults in all; None: no limit)."""

    match: str = r"\.tar"
    cut: float = 0.0
    status: float = 0.0
    code: int = 500
    delay: float = 0.0
    seed: int = 0
    only: int | None = None
    done: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def pick(self, rate: float) -> bool:
        if rate <= 0 or (self.only is not None and self.done >= self.only) or self.rng.random() >= rate:
            return False
        self.done += 1
        return True


class _Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _forward(self) -> None:
        faults: Faults = self.server.faults
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        if body is not None and not any(k.lower() == "content-type" for k in headers):
            # else urllib sends form-urlencoded and the server parses the body away (an empty object)
            headers["Content-Type"] = "application/octet-stream"
        req = urllib.request.Request(self.server.upstream + self.path, data=body, method=self.command,
                                     headers=headers)
        hit = re.search(faults.match, self.path) is not None
        if faults.delay:
            time.sleep(faults.delay)
        if hit and faults.pick(faults.status):
            return self._reply(faults.code, b"<Error><Code>InternalError</Code></Error>", {})
        try:
            with urllib.request.urlopen(req) as up:
                status, headers, data = up.status, dict(up.headers), up.read()
        except urllib.error.HTTPError as exc:
            status, headers, data = exc.code, dict(exc.headers), exc.read()
        cut = hit and self.command == "GET" and len(data) > 100 and faults.pick(faults.cut)
        self._reply(status, data, headers, cut_at=len(data) // 2 if cut else None)

    def _reply(self, status: int, data: bytes, headers: dict, cut_at: int | None = None) -> None:
        self.send_response(status)
        for k, v in headers.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(k, v)
        head = self.command == "HEAD" and "Content-Length" in headers
        self.send_header("Content-Length", headers["Content-Length"] if head else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data if cut_at is None else data[:cut_at])
        if cut_at is not None:
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward


def proxy(upstream: str, faults: Faults) -> _Server:
    faults.rng = random.Random(faults.seed)
    return serve(_Proxy, upstream=upstream, faults=faults)


# -- a plain HTTP server with Range support ----------------------------------------------------------------


class _RangeFiles(http.server.SimpleHTTPRequestHandler):
    """Files of a folder, honouring ``Range: bytes=a-b`` (206) — enough for an http(s):// shard set."""

    def log_message(self, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[override]
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return None
        data = path.read_bytes()
        m = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if m:
            a = int(m.group(1))
            b = int(m.group(2)) if m.group(2) else len(data) - 1
            body = data[a:b + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {a}-{a + len(body) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", self.date_time_string(int(path.stat().st_mtime)))
        self.send_header("ETag", f'"{path.stat().st_mtime_ns:x}-{len(data):x}"')
        self.end_headers()
        import io

        return io.BytesIO(body)


def range_server(folder: Path) -> _Server:
    import functools

    handler = functools.partial(_RangeFiles, directory=str(folder))
    return serve(handler)  # type: ignore[arg-type]
