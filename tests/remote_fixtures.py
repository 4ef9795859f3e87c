"""Real servers on loopback for the object-storage tests: an S3 server (moto), a fault-injecting HTTP
proxy in front of it (both shared with the object-storage benchmark: :mod:`benchmarks.loopback`), and a
plain HTTP server with Range support.

Objects are uploaded with boto3 (pure Python): the test process must not start obstore's runtime
itself, or forked DataLoader workers started later by a test would hang (docs/reading.md).
"""

from __future__ import annotations

import http.server
import re
from pathlib import Path

from benchmarks.loopback import CREDENTIALS, Faults, Server, proxy, s3_client, serve, upload, url_of

__all__ = ["CREDENTIALS", "Faults", "proxy", "range_server", "s3_client", "serve", "upload", "url_of"]


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


def range_server(folder: Path) -> Server:
    import functools

    handler = functools.partial(_RangeFiles, directory=str(folder))
    return serve(handler)  # type: ignore[arg-type]
