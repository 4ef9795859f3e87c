"""A small fake of Kaggle's dataset API on 127.0.0.1, for the real ``kaggle`` client to talk to.

It implements the calls ``KaggleApi.dataset_create_new`` / ``dataset_create_version`` make
(``GetDatasetStatus``, ``StartBlobUpload``, the resumable upload ``PUT`` with ``Content-Range``,
``CreateDataset``, ``CreateDatasetVersion``), records every request, and stores each version's files
under ``store/OWNER/SLUG/vN/``. The client reaches it with ``KAGGLE_API_ENVIRONMENT=LOCALHOST``
(endpoint ``http://localhost``) and ``HTTP_PROXY`` pointing here (:meth:`FakeKaggle.env`).

Failure switches: ``fail_put`` (file name → HTTP status of the first PUT of that file, which keeps only
half of the bytes), ``create_error`` (a CreateDataset/Version answered ``status: error``),
``busy_refusals`` (CreateDatasetVersion answered 403 "still processing" this many times),
``processing_polls`` (GetDatasetStatus answers BLOBS_RECEIVED this many times after a create),
``hang_put`` (file name → how many PUTs of that file keep half of the bytes and never answer: the
connection stays open, silent, until the fake shuts down).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Upload:
    name: str
    length: int
    data: bytearray = field(default_factory=bytearray)

    @property
    def complete(self) -> bool:
        return len(self.data) == self.length


@dataclass
class Dataset:
    ref: str
    created: dict[str, Any]
    versions: list[dict[str, Any]] = field(default_factory=list)
    processing: int = 0


class FakeKaggle:
    """The fake service; ``with FakeKaggle(store) as fake: ...`` serves on ``fake.port``."""

    def __init__(self, store: Path) -> None:
        self.store = Path(store)
        self.requests: list[tuple[str, str, Any]] = []   # (method, call or upload name, body or headers)
        self.uploads: dict[str, Upload] = {}
        self.datasets: dict[str, Dataset] = {}
        self.fail_put: dict[str, int] = {}
        self.create_error: str | None = None
        self.busy_refusals = 0
        self.html_answers = 0  #: answer this many API calls with a 200 HTML page (a proxy's or a login page)
        self.processing_polls = 0
        self.hang_put: dict[str, int] = {}
        self.hung = 0                                    # PUTs left unanswered so far
        self.closing = threading.Event()
        self.auth: set[str] = set()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeKaggle:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()

    def env(self, home: Path) -> dict[str, str]:
        """The environment a process needs to publish here with test credentials."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("KAGGLE_") and k.lower() not in ("no_proxy", "http_proxy", "https_proxy",
                                                                   "all_proxy")}
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        env.update(HOME=str(home), KAGGLE_CONFIG_DIR=str(home / ".kaggle"), KAGGLE_USERNAME="tester",
                   KAGGLE_KEY="test-key-0123", KAGGLE_API_ENVIRONMENT="LOCALHOST", TMPDIR=str(home / "tmp"),
                   HTTP_PROXY=f"http://127.0.0.1:{self.port}", http_proxy=f"http://127.0.0.1:{self.port}")
        return env

    def calls(self, name: str) -> list[Any]:
        return [body for method, call, body in self.requests if call == name]

    def files(self, ref: str, version: int = -1) -> Path:
        """The folder holding a version's files as the server stored them."""
        return self.store / ref / f"v{len(self.datasets[ref].versions) if version == -1 else version}"

    # -- the calls -------------------------------------------------------------------------------

    def call(self, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        ref = f"{body.get('ownerSlug')}/{body.get('datasetSlug') or body.get('slug')}"
        if name == "GetDatasetStatus":
            ds = self.datasets.get(ref)
            if ds is None:
                return 404, {"code": 404, "message": f"Dataset {ref} not found"}
            if ds.processing > 0:
                ds.processing -= 1
                return 200, {"status": "BLOBS_RECEIVED"}
            return 200, {"status": "READY"}
        if name == "StartBlobUpload":
            token = f"blob-{len(self.uploads):04d}"
            self.uploads[token] = Upload(body["name"], int(body.get("contentLength", 0)))
            return 200, {"token": token, "createUrl": f"http://127.0.0.1:{self.port}/upload/{token}"}
        if name == "CreateDataset":
            return self._create(ref, body, body.get("files", []), None)
        if name == "CreateDatasetVersion":
            if ref not in self.datasets:
                return 404, {"code": 404, "message": f"Dataset {ref} not found"}
            if self.busy_refusals > 0:
                self.busy_refusals -= 1
                return 403, {"code": 403, "message": "The dataset is still processing a previous version; "
                                                     "try again once it is ready"}
            b = body.get("body", {})
            return self._create(ref, body, b.get("files", []), b.get("versionNotes"))
        return 404, {"code": 404, "message": f"the fake does not implement {name}"}

    def _create(self, ref: str, body: dict[str, Any], files: list[dict[str, Any]], notes: str | None
                ) -> tuple[int, dict[str, Any]]:
        if self.create_error is not None:
            return 200, {"status": "error", "error": self.create_error}
        for f in files:
            up = self.uploads.get(f.get("token"))
            if up is None or not up.complete:
                return 200, {"status": "error", "error": f"file token {f.get('token')} is not a complete upload"}
        ds = self.datasets.setdefault(ref, Dataset(ref, body))
        ds.versions.append({"notes": notes, "request": body, "files": {self.uploads[f["token"]].name: f
                                                                       for f in files}})
        folder = self.files(ref)
        folder.mkdir(parents=True)
        for f in files:
            up = self.uploads[f["token"]]
            (folder / up.name).write_bytes(bytes(up.data))
        ds.processing = self.processing_polls
        return 200, {"ref": ref, "url": f"http://localhost/datasets/{ref}", "status": "ok", "error": ""}

    def put(self, token: str, headers: Any, body: bytes) -> tuple[int, dict[str, str]]:
        up = self.uploads.get(token)
        if up is None:
            return 404, {}
        span = headers.get("Content-Range")
        if span and span.startswith("bytes */"):
            if up.complete:
                return 200, {}
            return 308, ({"Range": f"bytes=0-{len(up.data) - 1}"} if up.data else {})
        if span:
            m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", span)
            if m is None or int(m.group(1)) != len(up.data):
                return 400, {}
            up.data.extend(body)
        else:
            up.data[:] = body
        if self.hang_put.get(up.name, 0) > 0:
            self.hang_put[up.name] -= 1
            self.hung += 1
            del up.data[len(body) // 2:]
            return 0, {}
        status = self.fail_put.pop(up.name, None)
        if status is not None:
            del up.data[len(body) // 2:]
            return status, {}
        return (200 if up.complete else 308), {}


def _handler(fake: FakeKaggle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, doc: dict[str, Any] | None, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(doc if doc is not None else {}).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            body = json.loads(self._body() or b"{}")
            name = path.rsplit("/", 1)[-1]
            with fake.lock:
                fake.requests.append(("POST", name, body))
                fake.auth.add(self.headers.get("Authorization", ""))
                html = fake.html_answers > 0
                fake.html_answers -= html
                status, doc = (200, None) if html else fake.call(name, body)
            if html:
                return self._send_html()
            self._send(status, doc)

        def _send_html(self) -> None:
            page = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please sign in</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def do_PUT(self) -> None:
            token = urlsplit(self.path).path.rsplit("/", 1)[-1]
            body = self._body()
            with fake.lock:
                up = fake.uploads.get(token)
                fake.requests.append(("PUT", up.name if up else token,
                                      {"range": self.headers.get("Content-Range"), "bytes": len(body)}))
                status, headers = fake.put(token, self.headers, body)
            if status == 0:  # an upload that never answers
                fake.closing.wait()
                return
            self._send(status, {}, headers)

    return Handler


def mount(stored: Path, inputs: Path, ref: str) -> Path:
    """A copy of a dataset's stored files (``FakeKaggle.files``) where a notebook finds its input
    (``INPUTS/datasets/OWNER/SLUG``), read-only like Kaggle's."""
    folder = inputs / "datasets" / ref
    shutil.copytree(stored, folder)
    for p in [folder, *folder.iterdir()]:
        p.chmod(stat.S_IRUSR | stat.S_IXUSR if p.is_dir() else stat.S_IRUSR)
    return folder


def unmount(folders: list[Path]) -> None:
    """Make :func:`mount`'s folders writable again (so that pytest can delete them)."""
    for folder in folders:
        for p in [folder, *folder.iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)
