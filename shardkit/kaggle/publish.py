"""``shardkit kaggle publish``: upload a prepared folder through the real ``kaggle`` client.

The client (``pip install 'shardkit[kaggle]'``: ``kaggle`` 2.2.5 and the ``six`` it imports without
declaring) does the HTTP: ``GetDatasetStatus``, then per file ``StartBlobUpload`` + a resumable ``PUT``,
then ``CreateDataset`` or ``CreateDatasetVersion``. shardkit adds what the client leaves out: a failed
create (the client returns ``status: error``, and its CLI exits 0) is a :class:`KaggleError`; a new
version refused while the last one is still processing (403) waits and tries again; a file whose upload
failed is tried again, and the client's saved upload state (its temp folder) resumes it where the server
says it stopped and skips files already uploaded — also when the whole command is run again. The client
sends its requests without a timeout, so a server that never answers would hold it forever: while
shardkit calls it, every request it makes has a connect and read timeout, and a PUT whose answer times out
is not sent again from the start (the client's resumable path asks the server where it stopped).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import time
import types
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shardkit import format as fmt
from shardkit.errors import StorageError, UsageError
from shardkit.format import Manifest
from shardkit.kaggle import rules
from shardkit.kaggle.delta import META_KEY
from shardkit.kaggle.layout import METADATA_NAME, default_folder

log = logging.getLogger(__name__)

#: ``progress(event, info)``: "start" {ref, files, bytes, new}, "retry" {attempt, reason}, "busy" {waited, status},
#: "done" {url}
Progress = Callable[[str, dict[str, Any]], None]

INSTALL_HINT = "publishing needs the kaggle client: pip install 'shardkit[kaggle]' (kaggle==2.2.5 and six)"


class KaggleError(StorageError):
    """Kaggle refused or failed a publish; the message names the dataset, the file or rule, and the
    server's own words."""


@dataclass
class PublishResult:
    """What ``publish`` did."""

    ref: str                  #: OWNER/SLUG
    url: str                  #: the dataset's page as the server reported it
    new: bool                 #: True: the dataset was created; False: a new version of it
    notes: str                #: version notes sent (new versions)
    files: int
    bytes: int
    attempts: int = 1         #: calls of the client (more when an upload was resumed)
    waited: float = 0.0       #: seconds spent waiting for Kaggle to finish processing
    invalid_tags: list[str] = field(default_factory=list)


def upload_folder(location: str | os.PathLike[str]) -> Path:
    """The prepared folder of ``location``: itself when it holds ``dataset-metadata.json``, else the
    ``SET-kaggle`` folder ``prepare`` made beside the set."""
    p = Path(location)
    for folder in (p, default_folder(fmt.manifest_root(p))):
        if (folder / METADATA_NAME).is_file():
            return folder
    raise UsageError(f"{p}: no {METADATA_NAME} here or in {default_folder(fmt.manifest_root(p))}; run "
                     "'shardkit kaggle prepare SET --id OWNER/SLUG --title ...' first")


def publish(location: str | os.PathLike[str], notes: str | None = None, *, public: bool = False,
            progress: Progress | None = None, attempts: int = 3, wait_timeout: float = 1800.0,
            poll_seconds: float = 30.0, delta: bool = False, timeout: float = 60.0) -> PublishResult:
    """Create the Kaggle dataset of a prepared folder, or a new version when it exists.

    ``notes``: version notes (default: for a set made by ``shardkit update``, its ``diff`` against the
    parent version as ``prepare`` found it; else the set's version id and totals). ``attempts``: client calls
    when an upload fails (each resumes the unfinished files). ``wait_timeout`` / ``poll_seconds``: how
    long, and how often, to wait while Kaggle says the last version is still processing. Raises
    :class:`KaggleError` (server refusals, naming its message), :class:`UsageError` (no client, no
    prepared folder), :class:`~shardkit.errors.ManifestError`. ``delta``: the folder must be a delta
    dataset (``prepare(..., delta=True)``; a :class:`UsageError` otherwise, before anything is sent).
    ``timeout``: seconds each request may wait for the server (to connect: at most 30 s) before it is
    given up and the upload resumed; a failure after such timeouts names the endpoint that did not answer."""
    if not (isinstance(timeout, int | float) and 0 < timeout < float("inf")):
        raise UsageError(f"timeout={timeout!r}: give a positive number of seconds")
    folder = upload_folder(location)
    meta, manifest = _check_folder(folder)
    if delta and not _is_delta(meta):
        raise UsageError(f"{folder}: was not prepared as a delta dataset; run 'shardkit kaggle prepare SET --delta "
                         "--id OWNER/SLUG ...' (or publish it without --delta: a full snapshot)")
    ref = str(meta.get("id", ""))
    rules.split_id(ref)
    api = _client()
    emit = progress or (lambda event, info: None)
    with _timeouts(timeout) as silent:
        try:
            new = not _exists(api, ref)
            notes = notes or _planned_notes(meta) or (default_notes(manifest) if manifest is not None else "update")
            names = [p for p in sorted(os.listdir(folder)) if p != METADATA_NAME and not p.endswith(fmt.TMP_SUFFIX)]
            size = sum((folder / n).stat().st_size for n in names)
            emit("start", {"ref": ref, "files": len(names), "bytes": size, "new": new})
            result = PublishResult(ref, "", new, notes, len(names), size)
            response = _create(api, folder, result, public, emit, attempts, wait_timeout, poll_seconds)
        except KaggleError as exc:
            raise KaggleError(f"{exc}{_silence_note(silent, timeout)}") from None
    result.url = response.url or ""
    result.invalid_tags = list(response.invalid_tags or [])
    if result.invalid_tags:
        log.warning("%s: Kaggle did not know these keywords and left them out: %s", ref, result.invalid_tags)
    emit("done", {"url": result.url})
    return result


def default_notes(manifest: Manifest) -> str:
    """Version notes when none are given: the content version and its totals."""
    t = manifest.totals
    return (f"shardkit {manifest.version_id}: {t.get('samples')} samples, {float(t.get('hours', 0)):.2f} h, "
            f"{len(manifest.vocabulary)} classes, {len(manifest.shards)} shards")


def _is_delta(meta: dict[str, Any]) -> bool:
    """Whether ``prepare`` laid the folder out as a delta dataset."""
    planned = meta.get(META_KEY)
    return isinstance(planned, dict) and bool(planned.get("delta"))


def _planned_notes(meta: dict[str, Any]) -> str | None:
    """The notes ``prepare`` planned for a derived set (its diff against the parent version)."""
    planned = meta.get(META_KEY)
    notes = planned.get("notes") if isinstance(planned, dict) else None
    return str(notes) if notes else None


def _check_folder(folder: Path) -> tuple[dict[str, Any], Manifest | None]:
    """The metadata and manifest of a prepared folder, with every file the manifest names present at its
    size (no manifest: a folder of other files, e.g. a wheelhouse)."""
    try:
        meta = json.loads((folder / METADATA_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{folder / METADATA_NAME}: cannot read it ({exc}); run 'shardkit kaggle prepare' again"
                         ) from None
    manifest = Manifest.load(folder) if (folder / fmt.MANIFEST_NAME).exists() else None
    for e in manifest.shards if manifest is not None else []:
        if e.origin is not None and _is_delta(meta):
            continue  # held by the parent's dataset
        for name, size in ((e.name, e.bytes), (e.index, e.index_bytes)):
            path = folder / name
            if not path.is_file() or path.stat().st_size != size:
                raise UsageError(f"{path}: missing or not {size} bytes as the manifest says; run "
                                 "'shardkit kaggle prepare' again")
    for layer in manifest.layers if manifest is not None else []:
        path = folder / layer.file
        if not path.is_file() or path.stat().st_size != layer.bytes:
            raise UsageError(f"{path}: label layer missing or not {layer.bytes} bytes as the manifest says; run "
                             "'shardkit kaggle prepare' again")
    if len(os.listdir(folder)) - 1 > rules.MAX_FILES:
        raise UsageError(f"{folder}: more than {rules.MAX_FILES} files to upload; run 'shardkit kaggle prepare' again")
    return meta, manifest


def _client() -> Any:
    """An authenticated ``KaggleApi``; :class:`UsageError` without the client, :class:`KaggleError`
    without credentials."""
    try:
        with _quiet():
            from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as exc:
        raise UsageError(f"{INSTALL_HINT} ({exc})") from None
    api = KaggleApi()
    try:
        with _quiet():
            api.authenticate()
    except SystemExit:
        raise KaggleError("no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN), or put "
                          "kaggle.json in ~/.kaggle (Kaggle: Settings > API > Create New Token)") from None
    return api


def _exists(api: Any, ref: str) -> bool:
    from requests import HTTPError

    try:
        with _quiet():
            api.dataset_status(ref)
    except HTTPError as exc:
        if _status_code(exc) == 404:
            return False
        raise KaggleError(f"{ref}: Kaggle refused the status request (HTTP {_status_code(exc)}: "
                          f"{server_message(exc)}); check the credentials and the OWNER in the id") from None
    except json.JSONDecodeError:  # before OSError: requests' JSONDecodeError is both
        raise _not_api(ref) from None
    except OSError as exc:
        raise KaggleError(f"{ref}: cannot reach Kaggle ({exc}); check the network") from None
    return True


def _create(api: Any, folder: Path, result: PublishResult, public: bool, emit: Progress, attempts: int,
            wait_timeout: float, poll_seconds: float) -> Any:
    """Call the client until the dataset or version is created, resuming uploads and waiting while busy."""
    from requests import HTTPError

    what = "dataset" if result.new else "new version"
    deadline = time.monotonic() + wait_timeout
    while True:
        if not result.new:
            result.waited += _wait_ready(api, result.ref, emit, deadline, poll_seconds)
        try:
            with _quiet():
                response = (api.dataset_create_new(str(folder), public=public, quiet=True, dir_mode="skip")
                            if result.new else
                            api.dataset_create_version(str(folder), result.notes, quiet=True, dir_mode="skip"))
        except HTTPError as exc:
            message = server_message(exc)
            if _status_code(exc) == 403 and "process" in message.lower() and time.monotonic() < deadline:
                result.waited += _pause(emit, poll_seconds, {"waited": result.waited, "status": message})
                continue
            raise KaggleError(f"{result.ref}: Kaggle refused the {what} (HTTP {_status_code(exc)}: {message})"
                              ) from None
        except (ValueError, OSError) as exc:
            if isinstance(exc, json.JSONDecodeError):
                raise _not_api(result.ref) from None
            if isinstance(exc, ValueError) and "upload unsuccessful" not in str(exc).lower():
                raise KaggleError(f"{result.ref}: the kaggle client refused the folder: {exc}") from None
            if result.attempts >= attempts:
                raise KaggleError(f"{result.ref}: {exc} after {result.attempts} attempts; run the same command "
                                  "again to resume the upload") from None
            result.attempts += 1
            emit("retry", {"attempt": result.attempts, "reason": str(exc)})
            log.warning("%s: %s; trying again (attempt %d of %d)", result.ref, exc, result.attempts, attempts)
            continue
        if response is None or (response.status or "").lower() != "ok" or response.error:
            error = (response.error if response is not None else "") or f"status {response.status!r}"
            raise KaggleError(f"{result.ref}: Kaggle did not create the {what}: {error}")
        return response


def _wait_ready(api: Any, ref: str, emit: Progress, deadline: float, poll_seconds: float) -> float:
    """Seconds waited until Kaggle reports the dataset's last version ready (or failed) or the deadline."""
    waited = 0.0
    while True:
        try:
            with _quiet():
                status = str(api.dataset_status(ref)).lower()
        except json.JSONDecodeError:
            raise _not_api(ref) from None
        if status in ("ready", "failed") or time.monotonic() >= deadline:
            return waited
        waited += _pause(emit, poll_seconds, {"waited": waited, "status": status})


def _not_api(ref: str) -> KaggleError:
    """The error for an answer that is not Kaggle's API JSON (Kaggle was reached, or something in between)."""
    return KaggleError(f"{ref}: the answer was not Kaggle's API (not JSON: an HTML page from a proxy, a captive "
                       "portal or a sign-in page?); check HTTP(S)_PROXY and KAGGLE_API_ENDPOINT, or try again later "
                       "(a re-run resumes the upload)")


def _pause(emit: Progress, seconds: float, info: dict[str, Any]) -> float:
    emit("busy", info)
    log.info("Kaggle is still processing (%s); asking again in %.0f s", info.get("status"), seconds)
    time.sleep(seconds)
    return seconds


def server_message(exc: Any) -> str:
    """The server's own message of a ``requests.HTTPError`` (its JSON ``message``, else its text)."""
    response = getattr(exc, "response", None)
    if response is not None:
        with contextlib.suppress(ValueError, AttributeError):
            doc = response.json()
            if isinstance(doc, dict) and doc.get("message"):
                return str(doc["message"])[:500]
    return str(exc)[:500]


def _status_code(exc: Any) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _silence_note(silent: dict[str, int], timeout: float) -> str:
    """What a failure message adds when requests timed out: which endpoints gave no answer."""
    if not silent:
        return ""
    where = ", ".join(f"{host} ({n}×)" for host, n in silent.items())
    return (f" (no answer within {timeout:g} s from {where}; check the network, or give a longer timeout: "
            "--timeout SECONDS)")


@contextlib.contextmanager
def _timeouts(timeout: float) -> Iterator[dict[str, int]]:
    """While the kaggle client runs: every request it makes waits at most ``timeout`` seconds for an
    answer, and a timed-out request is not re-sent by urllib3 (an upload's body is half consumed; the
    client resumes it from the server's count). Yields endpoint → number of timeouts.

    The client makes its sessions with ``requests.Session()`` of its own modules and offers no timeout;
    shardkit gives exactly those module names a session class that has one, and puts them back after."""
    import requests

    silent: dict[str, int] = {}

    class TimedSession(requests.Session):
        def send(self, request: Any, **kwargs: Any) -> Any:
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = (min(timeout, 30.0), timeout)
            try:
                return super().send(request, **kwargs)
            except (requests.Timeout, requests.ConnectionError) as exc:
                if isinstance(exc, requests.Timeout) or "timed out" in str(exc).lower():
                    host = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(request.url))
                    silent[host] = silent.get(host, 0) + 1
                raise

        def mount(self, prefix: str, adapter: Any) -> None:
            retries = getattr(adapter, "max_retries", None)
            if retries is not None and hasattr(retries, "new"):
                adapter.max_retries = retries.new(read=0)
            super().mount(prefix, adapter)

    shim = types.ModuleType("requests")
    shim.__dict__.update(vars(requests))
    shim.Session = TimedSession  # type: ignore[attr-defined]
    modules = [m for m in (sys.modules.get("kaggle.api.kaggle_api_extended"),
                           sys.modules.get("kagglesdk.kaggle_http_client")) if m is not None]
    saved = [(m, m.requests) for m in modules if getattr(m, "requests", None) is requests]
    for m, _ in saved:
        m.requests = shim
    try:
        yield silent
    finally:
        for m, original in saved:
            m.requests = original


class _LogWriter(io.TextIOBase):
    """A text stream that logs each line (the client prints progress and errors)."""

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                log.info("kaggle: %s", line.strip())
        return len(text)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The client's prints go to the log: the library never prints."""
    with contextlib.redirect_stdout(_LogWriter()), contextlib.redirect_stderr(_LogWriter()):
        yield
