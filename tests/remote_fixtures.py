"""Real servers on loopback for the object-storage tests: an S3 server (moto), a fault-injecting HTTP
proxy in front of it (both shared with the object-storage benchmark: :mod:`benchmarks.loopback`), and a
plain HTTP server with Range, ETag and If-Match support (:func:`benchmarks.loopback.range_server`).

Objects are uploaded with boto3 (pure Python): the test process must not start obstore's runtime
itself, or forked DataLoader workers started later by a test would hang (docs/reading.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks.loopback import (
    CREDENTIALS,
    Faults,
    Server,
    _RangeFiles,
    proxy,
    range_server,
    s3_client,
    serve,
    start_moto,
    upload,
    url_of,
)

__all__ = ["CREDENTIALS", "Faults", "moto_endpoint", "no_range_server", "proxy", "range_server", "s3_client", "serve",
           "upload", "url_of"]


@contextmanager
def moto_endpoint() -> Iterator[str]:
    """The endpoint URL of moto's S3 server on 127.0.0.1 (a free port), stopped on the way out."""
    server, endpoint = start_moto()
    try:
        yield endpoint
    finally:
        server.stop()


class _NoRanges(_RangeFiles):
    """A server that ignores ``Range``: every GET is answered 200 with the whole file."""

    def _answer(self) -> None:
        del self.headers["Range"]
        super()._answer()


def no_range_server(root: str | os.PathLike[str]) -> Server:
    """The files under ``root`` over HTTP on 127.0.0.1 from a server that ignores ``Range`` headers."""
    return serve(_NoRanges, root=str(root), delay=0.0)
