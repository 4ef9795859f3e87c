"""Real servers on loopback for the object-storage tests: an S3 server (moto), a fault-injecting HTTP
proxy in front of it (both shared with the object-storage benchmark: :mod:`benchmarks.loopback`), and a
plain HTTP server with Range, ETag and If-Match support (:func:`benchmarks.loopback.range_server`).

Objects are uploaded with boto3 (pure Python): the test process must not start obstore's runtime
itself, or forked DataLoader workers started later by a test would hang (docs/reading.md).
"""

from __future__ import annotations

from benchmarks.loopback import CREDENTIALS, Faults, proxy, range_server, s3_client, serve, upload, url_of

__all__ = ["CREDENTIALS", "Faults", "proxy", "range_server", "s3_client", "serve", "upload", "url_of"]
