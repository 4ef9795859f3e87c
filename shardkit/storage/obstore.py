"""The obstore plumbing behind object-store URLs (URL syntax: :mod:`shardkit.storage.location`).

- :func:`make_store`: the obstore store of a URL, credentials and endpoint from the standard environment
  (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, …, GCS/Azure equivalents) or ``storage_options``;
- :func:`storage_error`: an obstore failure as a one-line :class:`~shardkit.errors.StorageError` naming
  the URL and what to check (a missing object stays a ``FileNotFoundError``);
- fork safety: obstore's runtime does not survive ``fork``. :func:`mark_used` records the process that
  used it; :func:`check_process` refuses, with a :class:`UsageError`, in a process forked after that.
  :func:`fetch_metadata` reads the manifest, indexes and shard sizes in a short-lived child process, so
  that opening a set never starts the runtime in the process that later forks DataLoader workers.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from shardkit.errors import StorageError, UnsafeFileError, UsageError
from shardkit.storage.location import Location

log = logging.getLogger(__name__)

__all__ = ["cache_options", "check_process", "fetch_metadata", "get_whole", "make_store", "mark_used",
           "read_metadata", "storage_error", "used_here"]

#: obstore settings shardkit uses unless ``storage_options`` says otherwise: a few quick retries (an
#: unreachable endpoint fails in seconds, not after obstore's default 3 minutes)
DEFAULT_RETRY = {"max_retries": 4, "retry_timeout": timedelta(seconds=30),
                 "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=4),
                             "base": 2}}
#: each request (connecting, the answer and its whole body) may take 30 s; with the retries starting only
#: within 30 s of the first try, one read gives up within about 60 s (docs/reading.md)
DEFAULT_CLIENT = {"connect_timeout": timedelta(seconds=5), "timeout": timedelta(seconds=30)}
#: after a request timed out, further reads of that storage fail at once for this long (:class:`Stall`)
STALL_SECONDS = 30.0

#: ``storage_options`` keys that are shardkit's own, not obstore's (the disk cache that
#: :meth:`~shardkit.storage.object.ObjectStorage.from_location` wraps around the store)
LOCAL_KEYS = ("cache_dir", "cache_dir_bytes")

_ENDPOINT_KEYS = ("endpoint", "aws_endpoint", "aws_endpoint_url", "endpoint_url")
_ENDPOINT_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT", "AWS_ENDPOINT_URL_S3", "GOOGLE_CLOUD_STORAGE_ENDPOINT")


# -- stores -------------------------------------------------------------------------------------------


def make_store(url: str, storage_options: Mapping[str, Any] | None = None) -> Any:
    """The obstore store of root ``url``. ``storage_options``: obstore config keys (``endpoint``,
    ``access_key_id``, ``region``, …), plus ``client_options`` / ``retry_config`` dicts that replace
    shardkit's defaults key by key. An ``http://`` endpoint is allowed without further settings."""
    from obstore.store import from_url

    opts = {k: v for k, v in (storage_options or {}).items() if k not in LOCAL_KEYS}
    client = {**DEFAULT_CLIENT, **opts.pop("client_options", {})}
    retry = {**DEFAULT_RETRY, **opts.pop("retry_config", {})}
    endpoint = _configured_endpoint(opts)
    if url.lower().startswith("http://") or endpoint.lower().startswith("http://"):
        client.setdefault("allow_http", True)
    if endpoint and not url.lower().startswith(("http://", "https://")):
        refuse_cross_host_redirect(url, endpoint)
    try:
        return from_url(url, client_options=client, retry_config=retry, **opts)
    except Exception as exc:  # obstore raises its own config errors
        raise UsageError(f"{url}: cannot use this URL with storage_options {sorted(opts)} ({_first_line(exc)})"
                         ) from None


def _configured_endpoint(opts: Mapping[str, Any]) -> str:
    """The endpoint ``storage_options`` or the environment set (``""``: the service's own)."""
    endpoint = next((str(opts[k]) for k in _ENDPOINT_KEYS if k in opts), None)
    return endpoint or next((os.environ[k] for k in _ENDPOINT_ENV if os.environ.get(k)), "")


def endpoint_of(url: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """The server the requests for ``url`` go to, as a message names it: ``scheme://host:port`` of an
    http(s) URL or of the configured endpoint, else the URL's service and bucket."""
    if url.lower().startswith(("http://", "https://")):
        u = urllib.parse.urlsplit(url)
        return f"{u.scheme}://{u.netloc}"
    return _configured_endpoint(storage_options or {}).rstrip("/") or "/".join(url.split("/", 3)[:3])


def refuse_cross_host_redirect(url: str, endpoint: str) -> None:
    """Raise :class:`StorageError` when the custom ``endpoint`` answers a request for ``url`` with a
    redirect to another host. obstore follows redirects and keeps headers such as S3's
    ``x-amz-security-token`` (it drops only ``Authorization``), and it offers no setting to stop that, so
    shardkit asks first: one unsigned ``HEAD`` of the set's prefix, redirects not followed, each time a
    store is made (once per storage and process). A server that redirects only signed requests is not
    caught by this."""
    ep = urllib.parse.urlsplit(endpoint)
    bucket_and_prefix = url.split("://", 1)[1] if "://" in url else url
    path = (ep.path.rstrip("/") + "/" + urllib.parse.quote(bucket_and_prefix)) or "/"
    conn_type = http.client.HTTPSConnection if ep.scheme == "https" else http.client.HTTPConnection
    try:
        conn = conn_type(ep.hostname or "", ep.port, timeout=5)
        try:
            conn.request("HEAD", path)
            answer = conn.getresponse()
            status, location = answer.status, answer.getheader("Location") or ""
        finally:
            conn.close()
    except (OSError, http.client.HTTPException, ValueError):
        return  # unreachable or odd: obstore's own request names it
    if 300 <= status < 400 and location:
        to = urllib.parse.urlsplit(urllib.parse.urljoin(endpoint.rstrip("/") + path, location))
        if (to.hostname, to.port or (443 if to.scheme == "https" else 80)) != \
                (ep.hostname, ep.port or (443 if ep.scheme == "https" else 80)):
            raise StorageError(
                f"{url}: the storage endpoint {endpoint} answers with a redirect (HTTP {status}) to another host, "
                f"{to.scheme}://{to.netloc}; shardkit does not follow a redirect to another host with credentials "
                "(the client would send it the session token). Point the endpoint (AWS_ENDPOINT_URL / "
                f"storage_options['endpoint']) at {to.scheme}://{to.netloc} if you trust it")


def cache_options(source: object, storage_options: Mapping[str, Any] | None, cache_dir: str | os.PathLike[str] | None,
                  cache_bytes: int | str | None) -> dict[str, Any] | None:
    """``storage_options`` with ``ShardDataset``'s ``cache_dir``/``cache_bytes`` in them (as ``cache_dir`` and
    ``cache_dir_bytes``: the :class:`~shardkit.storage.cache.wrapper.CachedStorage` around the object store). A
    cache of a local folder, or a bound without a folder, is a :class:`UsageError`."""
    if cache_dir is None and cache_bytes is None:
        return None if storage_options is None else dict(storage_options)
    if cache_dir is None:
        raise UsageError(f"{source}: cache_bytes bounds cache_dir; pass cache_dir=FOLDER too")
    if Location.parse(source).is_local:
        raise UsageError(f"{source}: cache_dir keeps the shards of a set on object storage (s3://, gs://, az://, "
                         "http(s)://); a local folder is read in place")
    out = {**(storage_options or {}), "cache_dir": os.fspath(cache_dir)}
    if cache_bytes is not None:
        out["cache_dir_bytes"] = cache_bytes
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def storage_error(exc: BaseException, where: str, action: str = "read",
                  storage_options: Mapping[str, Any] | None = None) -> OSError:
    """One line for an obstore failure on ``where`` (a URL): ``FileNotFoundError`` for a missing
    object, else :class:`StorageError` saying what to check. ``action``: what was being done ("read",
    "write"); ``storage_options``: the store's, to name its endpoint and time limits. Returns it; the
    caller raises."""
    text = str(exc)
    kind = type(exc).__name__
    if timed_out(text):
        return _too_slow(where, storage_options)
    if "NoSuchBucket" in text:
        return StorageError(f"{where}: the bucket does not exist; check the URL and the endpoint "
                            f"(AWS_ENDPOINT_URL / storage_options['endpoint'])")
    if isinstance(exc, FileNotFoundError) or kind == "NotFoundError":
        return FileNotFoundError(2, "no such object", where)
    if kind in ("PermissionDeniedError", "UnauthenticatedError") or any(
            s in text for s in ("403 Forbidden", "401 Unauthorized", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                                "AccessDenied")):
        return StorageError(f"{where}: access denied; check the credentials (AWS_ACCESS_KEY_ID / "
                            "AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_* or "
                            f"storage_options) and that they may {action} this bucket")
    if any(s in text.lower() for s in ("connect", "dns error", "timed out", "timeout", "connection refused")):
        return StorageError(f"{where}: cannot reach the storage endpoint ({_reason(text)}); check the network and "
                            "the endpoint (AWS_ENDPOINT_URL / storage_options['endpoint'])")
    return StorageError(f"{where}: {action} failed ({_reason(text) or kind}); check the URL, the endpoint and "
                        "the credentials")


def timed_out(text: str) -> bool:
    """Whether obstore's error is a request that ran out of time once connected (a slow or stalled
    server), not one that could not connect."""
    timeout = "TimedOut" in text or "kind: Timeout" in text or "timed out" in text.lower()
    return timeout and "kind: Connect" not in text


class Stall:
    """After a request of a storage timed out, its further reads fail at once with that error for
    :data:`STALL_SECONDS`: a batch waits for a stalled endpoint once, not once per sample."""

    def __init__(self) -> None:
        self._until, self._err = 0.0, None

    def check(self) -> None:
        if self._err is not None and time.monotonic() < self._until:
            raise self._err

    def note(self, exc: BaseException, err: OSError) -> OSError:
        """Remember ``err`` (the one line for ``exc``) when ``exc`` is a timeout; returns it."""
        if timed_out(str(exc)):
            self._until, self._err = time.monotonic() + STALL_SECONDS, err
        return err


def _too_slow(where: str, storage_options: Mapping[str, Any] | None) -> StorageError:
    opts = storage_options or {}
    timeout = {**DEFAULT_CLIENT, **opts.get("client_options", {})}.get("timeout")
    retry = {**DEFAULT_RETRY, **opts.get("retry_config", {})}.get("retry_timeout")
    seconds = [f"{v.total_seconds():g} s" if isinstance(v, timedelta) else str(v) for v in (timeout, retry)]
    return StorageError(f"{where}: the storage endpoint {endpoint_of(where, opts)} did not answer in time (a request "
                        f"may take {seconds[0]}, retries stop after {seconds[1]}): it is slow or stalled. Check the "
                        "network, or allow more: storage_options={'client_options': {'timeout': '120s'}}")


def _reason(text: str) -> str:
    """The most telling short phrase of obstore's long, multi-line error text."""
    for key in ("Connection refused", "dns error", "timed out", "non-2xx status code: ", "error sending request"):
        pos = text.find(key)
        if pos >= 0:
            return text[pos:].splitlines()[0][:120].rstrip(": ")
    return text.strip().splitlines()[0][:160] if text.strip() else ""


# -- fork safety --------------------------------------------------------------------------------------

_USED_BY: list[int] = []  # the pid of the process that started obstore's runtime (inherited by a fork)


def mark_used() -> None:
    """Record that this process is about to use obstore (call before each use)."""
    if not _USED_BY:
        _USED_BY.append(os.getpid())


def check_process(url: str) -> None:
    """Raise :class:`UsageError` in a process forked from one that used obstore (it would hang there)."""
    if _USED_BY and _USED_BY[0] != os.getpid():
        raise UsageError(
            f"{url}: this process was forked from one that had already read from object storage, and "
            "obstore cannot be used after such a fork (it would hang). Pass "
            "multiprocessing_context='spawn' (or 'forkserver') to the DataLoader, or do not iterate the "
            "dataset in the main process before starting forked workers")


def used_here() -> bool:
    """Whether this process (not an ancestor) has used obstore."""
    return bool(_USED_BY) and _USED_BY[0] == os.getpid()


# -- the metadata of a set, read in a child process ------------------------------------------------

#: a child that reads manifest, indexes and sizes gives up after this long (seconds)
FETCH_TIMEOUT = 600


def fetch_metadata(url: str, storage_options: Mapping[str, Any] | None, manifest: str
                   ) -> tuple[dict[str, Any], dict[str, Any], dict[str, str | None]]:
    """``(objects, sizes, tags)``: the manifest and the index bytes of every shard it lists (each at most
    :data:`~shardkit.storage.base.MAX_OBJECT_BYTES`, checked before its body is read), and the size and
    ETag of every shard (a HEAD each), read in a child process (``sys.executable -c``; nothing of this
    process is re-imported). Values are bytes/ints, or the ``OSError`` reading them raised (rebuilt here).
    The parent never starts obstore's runtime, so it can fork DataLoader workers afterwards."""
    env = dict(os.environ)
    top = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([top, *filter(None, [env.get("PYTHONPATH")])])
    request = pickle.dumps((url, dict(storage_options or {}), manifest))
    log.info("reading %s%s and its indexes", url, manifest)
    try:
        proc = subprocess.run([sys.executable, "-c", "from shardkit.storage.obstore import _child; _child()"],
                              input=request, capture_output=True, env=env, timeout=FETCH_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise StorageError(f"{url}: reading the manifest and indexes took over {FETCH_TIMEOUT} s; check the "
                           "network and the endpoint") from None
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise StorageError(f"{url}: the process reading the manifest failed ({tail[0][:200]})")
    return _rebuild_all(*pickle.loads(proc.stdout))


def _rebuild(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, tuple) and value and value[0] == "missing":
            out[name] = FileNotFoundError(2, "no such object", value[1])
        elif isinstance(value, tuple) and value and value[0] == "error":
            out[name] = StorageError(value[1])
        elif isinstance(value, tuple) and value and value[0] == "unsafe":
            out[name] = UnsafeFileError(value[1])
        else:
            out[name] = value
    return out


def read_metadata(url: str, storage_options: Mapping[str, Any] | None, manifest: str
                  ) -> tuple[dict[str, Any], dict[str, Any], dict[str, str | None]]:
    """``(objects, sizes, tags)`` as :func:`fetch_metadata` gives them, read in this process (8 at a time)."""
    mark_used()
    return _rebuild_all(*_read_all(url, storage_options, manifest))


def _rebuild_all(objects: dict[str, Any], sizes: dict[str, Any], tags: dict[str, str | None]
                 ) -> tuple[dict[str, Any], dict[str, Any], dict[str, str | None]]:
    return _rebuild(objects), _rebuild(sizes), tags


def get_whole(store: Any, name: str, where: str) -> bytes:
    """The whole object ``name`` (a manifest or an index): its size is checked against
    :data:`~shardkit.storage.base.MAX_OBJECT_BYTES` from the answer's headers, before its body is read
    (:class:`~shardkit.errors.UnsafeFileError` if larger). obstore errors are left to the caller."""
    import obstore

    from shardkit.storage.base import MAX_OBJECT_BYTES

    got = obstore.get(store, name)
    size = int(got.meta["size"])
    if size > MAX_OBJECT_BYTES:
        raise UnsafeFileError(f"{where}: is {size} bytes, more than the {MAX_OBJECT_BYTES} a manifest or index "
                              "may have; not read")
    return bytes(got.bytes())


def _read_all(url: str, options: Mapping[str, Any] | None, manifest: str
              ) -> tuple[dict[str, Any], dict[str, Any], dict[str, str | None]]:
    """The manifest, its indexes, shard sizes and ETags; errors as ``("missing"|"error"|"unsafe", message)``
    (picklable)."""
    import obstore

    store = make_store(url, options)
    tags: dict[str, str | None] = {}

    def run(fn: Any, name: str) -> Any:
        try:
            return fn(name)
        except UnsafeFileError as exc:
            return ("unsafe", str(exc))
        except Exception as exc:
            err = storage_error(exc, url + name)
            return ("missing", url + name) if isinstance(err, FileNotFoundError) else ("error", str(err))

    def get(name: str) -> Any:
        return run(lambda m: get_whole(store, m, url + m), name)

    def head(name: str) -> int:
        meta = obstore.head(store, name)
        tags[name] = meta.get("e_tag")
        return int(meta["size"])

    objects: dict[str, Any] = {manifest: get(manifest)}
    sizes: dict[str, Any] = {}
    try:
        shards = [(str(e["name"]), str(e["index"])) for e in json.loads(objects[manifest])["shards"]]
    except Exception:  # not a manifest: the reader's parser says what is wrong with it
        shards = []
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(get, [i for _, i in shards]))
        sized = list(pool.map(lambda n: run(head, n), [s for s, _ in shards]))
    objects.update(zip([i for _, i in shards], got))
    sizes.update(zip([s for s, _ in shards], sized))
    return objects, sizes, tags


def _child() -> None:
    """The child of :func:`fetch_metadata`: request on stdin, pickled ``(objects, sizes, tags)`` on stdout."""
    url, options, manifest = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(pickle.dumps(_read_all(url, options, manifest)))
    sys.stdout.buffer.flush()


_FORK_LOCK = [threading.Lock()]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _FORK_LOCK.__setitem__(0, threading.Lock()))


def fork_lock() -> threading.Lock:
    """A lock of this process for making a store (a fresh one in a forked child: never one held at the fork)."""
    return _FORK_LOCK[0]
