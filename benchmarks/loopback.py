"""Object-storage servers on loopback, shared by the object-storage tests (``tests/remote_fixtures.py``) and
the object-storage benchmark (:mod:`benchmarks.remote`): an S3 server (moto), an HTTP proxy in front of it
that injects faults or first-byte latency, boto3 uploads, and a plain HTTP file server with Range,
ETag and If-Match support (:func:`range_server`) whose ranged GETs cost what the range costs
(``os.sendfile`` of those bytes; moto reads the whole object for every ranged GET).

Objects are uploaded with boto3 (pure Python): a process that later forks DataLoader workers must not
start obstore's runtime itself (docs/reading.md, "DataLoader workers and fork").

Run as a script, one server per process (the benchmark keeps their CPU out of its measuring process)::

    python -m benchmarks.loopback moto                          # prints http://127.0.0.1:PORT
    python -m benchmarks.loopback proxy UPSTREAM --delay 0.05   # the same, a proxy with 50 ms first-byte delay
    python -m benchmarks.loopback files DIR --delay 0.05        # DIR over HTTP, 50 ms before every first byte

Each serves until its stdin closes.
"""

from __future__ import annotations

import argparse
import email.utils
import http.client
import http.server
import os
import random
import re
import socketserver
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
               "AWS_DEFAULT_REGION": "us-east-1"}

#: bytes a proxy moves per read/write of a body
CHUNK = 1 << 20
#: the path at which :func:`range_server` answers the body bytes it has sent so far (a decimal number)
SENT_PATH = "/.bytes-sent"
_SENT = threading.Lock()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def serve(handler: type[http.server.BaseHTTPRequestHandler], **attrs: object) -> Server:
    """Start ``handler`` on 127.0.0.1, a free port, in a daemon thread; attributes go on the server."""
    server = Server(("127.0.0.1", 0), handler)
    for k, v in attrs.items():
        setattr(server, k, v)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def url_of(server: Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def start_moto() -> tuple[Any, str]:
    """``(server, endpoint URL)``: moto's S3 server on 127.0.0.1, a free port, in threads of this process."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def upload(endpoint: str, folder: Path, bucket: str, prefix: str) -> int:
    """Upload every file of ``folder`` to ``s3://bucket/prefix``; returns the bytes uploaded."""
    client = s3_client(endpoint)
    try:
        client.create_bucket(Bucket=bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    total = 0
    for f in sorted(Path(folder).iterdir()):
        if f.is_file():
            client.upload_file(str(f), bucket, prefix + f.name)
            total += f.stat().st_size
    return total


# -- a fault- and latency-injecting proxy ------------------------------------------------------------------


@dataclass
class Faults:
    """What the proxy does to requests for object names matching ``match`` (seeded): ``cut`` (fraction of
    GET bodies cut short), ``status`` (fraction answered with HTTP ``code``), ``delay`` (seconds before the
    first byte of every answer), ``only`` (at most this many faults in all; None: no limit). ``sent``: body
    bytes of GETs for matching names passed on so far (a test's count of what readers fetched)."""

    match: str = r"\.tar"
    cut: float = 0.0
    status: float = 0.0
    code: int = 500
    delay: float = 0.0
    seed: int = 0
    only: int | None = None
    done: int = 0
    sent: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def pick(self, rate: float) -> bool:
        if rate <= 0 or (self.only is not None and self.done >= self.only) or self.rng.random() >= rate:
            return False
        self.done += 1
        return True


_HOP = ("content-length", "transfer-encoding", "connection", "date", "server", "keep-alive")


class _Proxy(http.server.BaseHTTPRequestHandler):
    """Forwards each request to ``server.upstream`` over one kept-alive connection per client connection and
    streams the answer back in :data:`CHUNK` pieces, doing to it what ``server.faults`` says."""

    protocol_version = "HTTP/1.1"
    _up: http.client.HTTPConnection | None = None

    def log_message(self, *args: object) -> None:
        pass

    def _upstream(self) -> http.client.HTTPConnection:
        if self._up is None:
            u = urllib.parse.urlsplit(self.server.upstream)
            self._up = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        return self._up

    def _forward(self) -> None:
        faults: Faults = self.server.faults
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        if body is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/octet-stream"  # a body with no type may be parsed away
        hit = re.search(faults.match, self.path) is not None
        if faults.delay:
            time.sleep(faults.delay)
        if hit and faults.pick(faults.status):
            return self._reply(faults.code, {}, b"<Error><Code>InternalError</Code></Error>")
        for attempt in (0, 1):
            try:
                conn = self._upstream()
                conn.request(self.command, self.path, body=body, headers=headers)
                up = conn.getresponse()
                break
            except (ConnectionError, http.client.HTTPException):
                self._close_upstream()
                if attempt:
                    raise
        length = int(up.headers.get("Content-Length") or 0) if self.command != "HEAD" else 0
        cut = hit and self.command == "GET" and length > 100 and faults.pick(faults.cut)
        self._stream(up, length, cut_at=length // 2 if cut else None, count=hit and self.command == "GET")

    def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            if k.lower() not in _HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _stream(self, up: http.client.HTTPResponse, length: int, cut_at: int | None, count: bool = False) -> None:
        self.send_response(up.status)
        for k, v in up.headers.items():
            if k.lower() not in _HOP:
                self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", up.headers.get("Content-Length", "0"))
            self.end_headers()
            up.read()
            return
        if up.headers.get("Content-Length") is None:  # chunked or close-delimited: buffer it
            data = up.read()
            self._close_upstream()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_header("Content-Length", str(length))
        self.end_headers()
        left = length if cut_at is None else cut_at
        buf = memoryview(bytearray(min(CHUNK, max(1, left))))
        while left > 0:
            n = up.readinto(buf[:min(len(buf), left)])
            if not n:
                break
            self.wfile.write(buf[:n])
            if count:
                self.server.faults.sent += n
            left -= n
        if cut_at is not None:
            self._close_upstream()
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)

    def _close_upstream(self) -> None:
        if self._up is not None:
            self._up.close()
            self._up = None

    def finish(self) -> None:
        self._close_upstream()
        super().finish()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward


def proxy(upstream: str, faults: Faults) -> Server:
    """A proxy in front of ``upstream`` (``http://host:port``) doing ``faults``, in threads of this process."""
    faults.rng = random.Random(faults.seed)
    return serve(_Proxy, upstream=upstream, faults=faults)


# -- a plain HTTP file server with Range support --------------------------------------------------------


_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def etag_of(st: os.stat_result) -> str:
    """The ETag :func:`range_server` gives a file: changes when the file is replaced or rewritten."""
    return f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'


class _RangeFiles(http.server.BaseHTTPRequestHandler):
    """GET/HEAD of the files under ``server.root``: ``Range: bytes=a-b`` / ``a-`` / ``-n`` (206, 416), ``ETag``,
    ``Last-Modified``, ``If-Match`` (412) and ``If-None-Match`` (304); the body goes out with ``os.sendfile``, so
    a ranged GET costs the bytes of its range. ``server.delay`` seconds pass before every answer's first byte."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _path(self) -> Path | None:
        rel = os.path.normpath(urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/"))
        if rel.startswith("..") or os.path.isabs(rel):
            return None
        path = Path(self.server.root) / rel
        return path if path.is_file() else None

    def _empty(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _answer(self) -> None:
        if self.path == SENT_PATH:
            body = str(getattr(self.server, "sent", 0)).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        if self.server.delay:
            time.sleep(self.server.delay)
        path = self._path()
        if path is None:
            return self._empty(404)
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            tag, size = etag_of(st), st.st_size
            want = self.headers.get("If-Match")
            if want and want.strip() != "*" and tag not in [t.strip() for t in want.split(",")]:
                return self._empty(412)
            if self.headers.get("If-None-Match") == tag:
                return self._empty(304, {"ETag": tag})
            start, end, status = 0, size, 200
            m = _RANGE.match(self.headers.get("Range", "").strip())
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    start = int(m.group(1))
                    end = min(size, int(m.group(2)) + 1) if m.group(2) else size
                else:
                    start = max(0, size - int(m.group(2)))
                if start >= size or start >= end:
                    return self._empty(416, {"Content-Range": f"bytes */{size}"})
                status = 206
            self.send_response(status)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            self.send_header("Content-Length", str(end - start))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", tag)
            self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
            self.end_headers()
            if self.command == "GET":
                self._send(fh.fileno(), start, end - start)
        return None

    def _send(self, fd: int, offset: int, count: int) -> None:
        out = self.connection.fileno()
        while count > 0:
            n = os.sendfile(out, fd, offset, min(count, 1 << 30))
            if n <= 0:
                break
            offset += n
            count -= n
            with _SENT:
                self.server.sent = getattr(self.server, "sent", 0) + n

    do_GET = do_HEAD = _answer


def range_server(root: str | os.PathLike[str], delay: float = 0.0) -> Server:
    """The files under ``root`` over HTTP on 127.0.0.1 (see :class:`_RangeFiles`), in threads of this process;
    ``delay``: seconds before every answer's first byte."""
    return serve(_RangeFiles, root=str(root), delay=delay)


# -- the raw GET ceiling of a server --------------------------------------------------------------------


def raw_gets(url: str, options: dict[str, str] | None, names: list[tuple[str, int]], *, concurrency: int,
             seconds: float, window: int = 16 << 20) -> dict[str, float]:
    """Ranged GETs of ``window`` bytes over the objects ``names`` ((name, size)) of the set at ``url``, front to
    back, ``concurrency`` at a time, for ``seconds``, with obstore and nothing else: MB/s and GETs/s (run it in
    a forked child)."""
    import obstore

    from shardkit.storage.obstore import make_store

    store = make_store(url, options)
    ranges = [(n, s, min(s + window, size)) for n, size in names for s in range(0, size, window)]
    lock = threading.Lock()
    state = {"next": 0, "bytes": 0, "gets": 0}
    t0 = time.perf_counter()
    stop = t0 + seconds

    def loop() -> None:
        while time.perf_counter() < stop:
            with lock:
                n, a, b = ranges[state["next"] % len(ranges)]
                state["next"] += 1
            data = obstore.get_range(store, n, start=a, end=b)
            if len(data) != b - a:
                raise OSError(f"short GET: {len(data)} of {b - a} bytes")
            with lock:
                state["bytes"] += b - a
                state["gets"] += 1

    threads = [threading.Thread(target=loop) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {"mb_per_s": state["bytes"] / 1e6 / elapsed, "gets_per_s": state["gets"] / elapsed,
            "seconds": elapsed, "bytes": state["bytes"]}


# -- one server per process ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.loopback", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=("moto", "proxy", "files"))
    ap.add_argument("upstream", nargs="?", help="proxy: the server to forward to (http://host:port); files: the "
                    "folder to serve")
    ap.add_argument("--delay", type=float, default=0.0, help="proxy, files: seconds before every answer's first byte")
    args = ap.parse_args(argv)
    if args.kind == "moto":
        server, endpoint = start_moto()
    elif args.kind == "files":
        if not args.upstream:
            ap.error("files needs DIR")
        server = range_server(args.upstream, args.delay)
        endpoint = url_of(server)
    else:
        if not args.upstream:
            ap.error("proxy needs UPSTREAM")
        server = proxy(args.upstream, Faults(match=".", delay=args.delay))
        endpoint = url_of(server)
    print(endpoint, flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin (or exits)
    if args.kind == "moto":
        server.stop()
    else:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
