"""Packing into object storage: ``pack(SRC, "s3://bucket/prefix/")`` (also ``gs://``, ``az://``).

The pack writes into a local *staging* folder exactly as into a local OUT (:class:`ShardSetWriter`,
crash-safe ``pack-state.json``), and :class:`RemoteOut` mirrors it to the prefix, in an order that
keeps the prefix a valid shard set, or a resumable one, at every instant:

1. before anything is decoded: list the prefix (an unreachable endpoint, a missing bucket or refused
   credentials fail here, naming the URL), refuse a prefix holding another pack or other files, and
   upload ``pack-sources.json`` (the sources' sizes and modification times, so that a resume on another
   machine refuses sources that changed, as a local resume does), then ``pack-state.json`` (which also
   proves that writing is allowed); a prefix holding only ``pack-sources.json`` is a pack killed between
   the two and counts as empty;
2. after each finished shard, in a background thread (:data:`UPLOAD_QUEUE` finished shards may wait for
   it; the pack loop blocks only when that many are waiting): upload the shard and its index, each by
   *conditional create* (an object already at that name is never replaced: it must have the same size
   and sha256 — read from the ``sha256`` metadata shardkit attaches, else by hashing the object — or the
   pack stops with an :class:`OutputConflictError` naming it); then ``pack-state.json`` as it was when
   that shard finished (it names only uploaded shards); then delete the shard and index from staging.
   Staging thus holds at most ``UPLOAD_QUEUE + 1`` finished shards (waiting, and being uploaded) plus
   the one being written, plus the state. An upload error stops the pack at its next shard (or at the
   end) with that error; the shards still staged are uploaded by the re-run.
3. at the end: check that every shard and index the manifest names is in the prefix with its size,
   upload ``manifest.json`` last, then delete ``pack-state.json`` and ``pack-sources.json`` (a complete
   prefix holds exactly the files of a complete local pack).

Resume: the remote ``pack-state.json`` names only shards already uploaded; the local one may name a
few more, still in staging. A re-run uses the local state when it extends the remote one (uploading
what the remote lacks), else the remote one and its ``pack-sources.json`` (another machine, a lost
staging folder). Modification times are stamped, so sources copied to another machine must keep them
(``cp -p``, ``rsync -a``) for the pack to resume there; otherwise it asks for ``--overwrite``.

Objects up to :data:`SINGLE_PUT_MAX` are written with one ``PUT`` and ``If-None-Match: *`` (obstore
``mode="create"``); larger ones as multipart uploads (obstore cannot make those conditional), after a
``HEAD`` that finds nothing there — only a concurrent writer on another machine could slip between,
and the pack lock is local to the staging folder anyway (docs/format.md §7).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shardkit.errors import OutputConflictError, StorageError, UsageError
from shardkit.format import MANIFEST_NAME, PACK_STATE_NAME, Manifest
from shardkit.storage import obstore as locate
from shardkit.write.lock import LOCK_NAME
from shardkit.write.state import SOURCES_NAME, PackState, finished_pack, is_shard_set_file

log = logging.getLogger(__name__)

MB = 1 << 20
#: objects up to this size are uploaded with one conditional PUT (held in memory); larger ones multipart
SINGLE_PUT_MAX = 64 * MB
#: part size of a multipart upload
PART_BYTES = 16 * MB
#: the user metadata key holding an object's sha256 (hex), on every object a pack uploads
SHA_KEY = "sha256"
#: finished shards that may wait for the background upload thread before the pack loop waits for it (0:
#: upload in the pack loop itself)
UPLOAD_QUEUE = 2
#: schemes a pack can write to (http(s):// is read-only)
WRITABLE = ("s3", "s3a", "gs", "az", "abfs", "abfss", "adl", "azure")


def default_staging(url: str) -> Path:
    """The staging folder of a pack into ``url`` when none is given: under the temp folder, named from
    a hash of the URL, so that a re-run on the same machine finds it."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"shardkit-pack-{digest}"


class RemoteOut:
    """The object-store prefix a pack writes to, and its local staging folder (module docstring)."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None,
                 staging: str | os.PathLike[str] | None = None) -> None:
        import importlib.util

        scheme = url.split("://", 1)[0].lower()
        if scheme not in WRITABLE:
            raise UsageError(f"{url}: a pack writes to s3://, gs:// or az:// URLs (or a local folder), "
                             f"not {scheme}://")
        if url.endswith(".json"):
            raise UsageError(f"{url}: give the prefix to pack into (s3://bucket/prefix/), not a file")
        if importlib.util.find_spec("obstore") is None:
            raise UsageError(f"{url}: writing to object storage needs obstore: pip install 'shardkit[remote]'")
        self.url = url.rstrip("/") + "/"
        self.storage_options = dict(storage_options or {})
        self.default_staging = staging is None
        self.staging = default_staging(self.url) if staging is None else Path(staging)
        self._store: Any = None
        self._jobs: queue.Queue[tuple[dict[str, Any], bytes] | None] | None = None
        self._uploader: threading.Thread | None = None
        self._failed: BaseException | None = None

    def __repr__(self) -> str:
        return f"RemoteOut({self.url!r}, staging={str(self.staging)!r})"

    # -- obstore calls, errors named ---------------------------------------------------------------

    def _client(self) -> Any:
        locate.check_process(self.url)
        if self._store is None:
            self._store = locate.make_store(self.url, self.storage_options)
        locate.mark_used()
        return self._store

    def _fail(self, exc: BaseException, name: str, action: str) -> OSError:
        err = locate.storage_error(exc, self.url + name, action)
        if isinstance(err, StorageError):
            return StorageError(f"{err}; finished shards are kept: re-run the same command to continue")
        return err

    def _head(self, name: str) -> tuple[int, str | None] | None:
        """``(size, sha256 metadata or None)`` of object ``name``; None when there is none."""
        import obstore

        try:
            got = obstore.get(self._client(), name, options={"head": True})
        except Exception as exc:
            err = locate.storage_error(exc, self.url + name)
            if isinstance(err, FileNotFoundError):
                return None
            raise err from None
        return int(got.meta["size"]), got.attributes.get(SHA_KEY)

    def _get(self, name: str) -> bytes:
        import obstore

        try:
            return bytes(obstore.get(self._client(), name).bytes())
        except Exception as exc:
            raise self._fail(exc, name, "read") from None

    def read_object(self, name: str) -> bytes:
        """The bytes of object ``name`` of the prefix (e.g. an index already uploaded: call
        :meth:`wait_uploads` first). A missing object is a :class:`StorageError`."""
        try:
            return self._get(name)
        except FileNotFoundError:
            raise StorageError(f"{self.url}{name}: missing from the prefix; was it deleted? re-run the same "
                               "command to upload it again") from None

    def wait_uploads(self) -> None:
        """Wait until every shard handed to :meth:`shard_done` is uploaded; raise an upload's error."""
        self._stop_uploads()
        self._raise_failed()

    def _put(self, name: str, data: bytes) -> None:
        """Write (replace) a small object of shardkit's bookkeeping: state or manifest."""
        import obstore

        try:
            obstore.put(self._client(), name, data, attributes={SHA_KEY: hashlib.sha256(data).hexdigest()},
                        use_multipart=False)
        except Exception as exc:
            raise self._fail(exc, name, "write") from None

    def _delete(self, names: list[str]) -> None:
        import obstore

        for name in names:
            try:
                obstore.delete(self._client(), name)
            except Exception as exc:
                err = locate.storage_error(exc, self.url + name, "write")
                if not isinstance(err, FileNotFoundError):
                    raise err from None

    def listing(self) -> tuple[dict[str, int], list[str]]:
        """``({object name: size}, [sub-prefixes])`` directly under the prefix."""
        import obstore

        try:
            got = obstore.list_with_delimiter(self._client())
        except Exception as exc:
            raise locate.storage_error(exc, self.url, "list") from None
        objects = {str(o["path"]).rsplit("/", 1)[-1]: int(o["size"]) for o in got["objects"]}
        return objects, [str(p).rstrip("/").rsplit("/", 1)[-1] + "/" for p in got["common_prefixes"]]

    # -- what the prefix holds -------------------------------------------------------------------

    def inspect(self, fingerprint: str, *, overwrite: bool) -> tuple[PackState | None, Manifest | None]:
        """``(remote state, None)`` for an unfinished pack of the same inputs, ``(None, manifest)`` for
        a complete one, ``(None, None)`` for an empty prefix (emptied first with ``overwrite``: only
        shardkit's own objects). :class:`OutputConflictError` naming the URL for anything else."""
        objects, folders = self.listing()
        foreign = [n for n in objects if not is_shard_set_file(n) or n == LOCK_NAME] + folders
        if overwrite:
            if foreign:
                raise OutputConflictError(
                    f"{self.url}: holds objects that are not a shard set ({', '.join(foreign[:3])}); --overwrite "
                    "only deletes shardkit's own objects: choose an empty prefix")
            self._delete([MANIFEST_NAME] * (MANIFEST_NAME in objects) + sorted(set(objects) - {MANIFEST_NAME}))
            return None, None
        if set(objects) <= {SOURCES_NAME} and not folders:  # empty, or a pack killed before its first state
            self._delete(list(objects))
            return None, None
        if foreign:
            raise OutputConflictError(f"{self.url}: is not empty and is not a shardkit shard set "
                                      f"({', '.join(foreign[:3])}); choose an empty prefix")
        if MANIFEST_NAME in objects:
            done = self._complete_manifest(fingerprint)
            if done is not None:
                return None, done
        if PACK_STATE_NAME in objects:
            state = PackState.from_bytes(self._get(PACK_STATE_NAME), self.url + PACK_STATE_NAME)
            if state.source_fingerprint != fingerprint:
                raise OutputConflictError(
                    f"{self.url}: holds an unfinished pack of other sources or options; re-run that exact command "
                    "to finish it, or add --overwrite to start over")
            return state, None
        raise OutputConflictError(
            f"{self.url}: holds shard files but no manifest or pack state; add --overwrite to start over")

    def _complete_manifest(self, fingerprint: str) -> Manifest | None:
        """The prefix's manifest when it is complete and of these inputs; refuses other inputs."""
        doc = finished_pack(lambda: Manifest.from_json(self._get(MANIFEST_NAME), self.url + MANIFEST_NAME),
                            fingerprint, self.url, "prefix")
        return doc if doc.complete else None

    def drop_stale_state(self) -> None:
        """Delete the prefix's ``pack-state.json`` left by a pack killed after its manifest was uploaded."""
        objects, _ = self.listing()
        self._delete([n for n in (PACK_STATE_NAME, SOURCES_NAME) if n in objects])

    # -- staging -----------------------------------------------------------------------------------

    def prepare_staging(self, remote: PackState | None, fingerprint: str, *, overwrite: bool) -> int:
        """Make staging hold the state to continue from: the local one when it extends ``remote`` (the
        shards past it still staged), else ``remote`` (or nothing: a fresh pack). Returns how many of
        the staged state's shards are already uploaded."""
        st = self.staging
        names = sorted(n for n in os.listdir(st) if n != LOCK_NAME) if st.is_dir() else []
        foreign = [n for n in names if not is_shard_set_file(n)]
        if foreign:
            raise OutputConflictError(f"{st}: the staging folder of {self.url} holds other files "
                                      f"({', '.join(foreign[:3])}); choose an empty --staging folder")
        uploaded = len(remote.shards) if remote is not None else 0
        local = None
        if not overwrite and PACK_STATE_NAME in names:
            try:
                local = PackState.load(st / PACK_STATE_NAME)
            except OutputConflictError:
                local = None
        if local is not None and self._extends(local, remote, fingerprint):
            return uploaded
        if names:
            log.info("%s: staging folder %s does not continue the prefix's pack; starting it afresh", self.url, st)
        for n in names:
            (st / n).unlink()
        if remote is not None:
            remote.save(st)
            if SOURCES_NAME in self.listing()[0]:  # the stamps of the run that started it, checked on resume
                (st / SOURCES_NAME).write_bytes(self._get(SOURCES_NAME))
        return uploaded

    def _extends(self, local: PackState, remote: PackState | None, fingerprint: str) -> bool:
        done = remote.shards if remote is not None else []
        if local.source_fingerprint != fingerprint or local.shards[:len(done)] != done:
            return False
        return all((self.staging / s["name"]).exists() and (self.staging / s["index"]).exists()
                   for s in local.shards[len(done):])

    def _drop_local(self, record: dict[str, Any]) -> None:
        (self.staging / record["name"]).unlink(missing_ok=True)
        (self.staging / record["index"]).unlink(missing_ok=True)

    def clean_staging(self, *, everything: bool) -> None:
        """After a pack: with ``everything`` (it is complete in the prefix) delete shardkit's files from
        staging; remove the default staging folder when that leaves it empty."""
        self._stop_uploads()
        st = self.staging
        if not st.is_dir():
            return
        for n in os.listdir(st) if everything else ():
            if is_shard_set_file(n) and n != LOCK_NAME:
                (st / n).unlink(missing_ok=True)
        if self.default_staging:
            try:
                st.rmdir()
            except OSError:
                pass  # another pack took the lock meanwhile, or files of its own

    # -- uploading ---------------------------------------------------------------------------------

    def begin(self, state: PackState, uploaded: int) -> None:
        """Upload the staged shards the prefix lacks (``state.shards[uploaded:]``), then the state;
        from here on :meth:`shard_done` follows the writer."""
        self.state = state
        for record in state.shards[uploaded:]:
            self._upload_record(record)
        if (self.staging / SOURCES_NAME).exists():
            self._put(SOURCES_NAME, (self.staging / SOURCES_NAME).read_bytes())
        self._put(PACK_STATE_NAME, state.to_bytes())
        for record in state.shards:
            self._drop_local(record)

    def shard_done(self, record: dict[str, Any]) -> None:
        """The writer's hook after each finished shard: hand it, with the state as it is now (naming it),
        to the upload thread (waiting while :data:`UPLOAD_QUEUE` shards wait already), which uploads it
        and its index, then that state, then drops it from staging. Raises the error of an earlier
        upload that failed."""
        self._raise_failed()
        job = (record, self.state.to_bytes())
        if UPLOAD_QUEUE <= 0:
            self._upload_job(job)
            return
        if self._jobs is None:
            self._jobs = queue.Queue(UPLOAD_QUEUE)
            self._uploader = threading.Thread(target=self._upload_loop, args=(self._jobs,), daemon=True,
                                              name="shardkit-upload")
            self._uploader.start()
        self._jobs.put(job)

    def _upload_job(self, job: tuple[dict[str, Any], bytes]) -> None:
        record, state = job
        self._upload_record(record)
        self._put(PACK_STATE_NAME, state)
        self._drop_local(record)

    def _upload_loop(self, jobs: queue.Queue[tuple[dict[str, Any], bytes] | None]) -> None:
        """The upload thread: jobs in order; after a failure it only drains the queue (the pack stops)."""
        while (job := jobs.get()) is not None:
            try:
                if self._failed is None:
                    self._upload_job(job)
            except BaseException as exc:
                self._failed = exc
            finally:
                jobs.task_done()
        jobs.task_done()

    def _stop_uploads(self) -> None:
        """Wait for the upload thread to finish the shards handed to it, and end it."""
        if self._jobs is not None and self._uploader is not None:
            self._jobs.put(None)
            self._uploader.join()
        self._jobs = self._uploader = None

    def _raise_failed(self) -> None:
        if self._failed is not None:
            exc, self._failed = self._failed, None
            raise exc

    def _upload_record(self, record: dict[str, Any]) -> None:
        self.upload(record["name"], int(record["bytes"]), str(record["sha256"]))
        self.upload(record["index"], int(record["index_bytes"]), str(record["index_sha256"]))

    def upload(self, name: str, size: int, sha256: str) -> None:
        """Create object ``name`` from the staged file of that name (``size`` bytes, ``sha256``), never
        replacing an object already there: one that has the same size and sha256 is kept (an earlier
        run uploaded it), another is an :class:`OutputConflictError`. The result is checked by HEAD."""
        import obstore

        path, attrs = self.staging / name, {SHA_KEY: sha256}
        exists = size > SINGLE_PUT_MAX and self._head(name) is not None
        try:
            if size <= SINGLE_PUT_MAX:
                obstore.put(self._client(), name, path.read_bytes(), mode="create", attributes=attrs,
                            use_multipart=False)
            elif not exists:
                obstore.put(self._client(), name, path, attributes=attrs, use_multipart=True, chunk_size=PART_BYTES)
        except Exception as exc:
            if type(exc).__name__ != "AlreadyExistsError":
                raise self._fail(exc, name, "write") from None
            exists = True
        if exists:
            self._same_or_refuse(name, size, sha256)
            return
        got = self._head(name)
        if got is None or got[0] != size or got[1] not in (None, sha256):
            raise StorageError(f"{self.url}{name}: the uploaded object is not the {size} bytes that were sent "
                               f"({'missing' if got is None else f'{got[0]} bytes'}); re-run the same command")
        log.info("uploaded %s%s (%d bytes)", self.url, name, size)

    def _same_or_refuse(self, name: str, size: int, sha256: str) -> None:
        got = self._head(name)
        if got is None:
            raise StorageError(f"{self.url}{name}: was there a moment ago and is gone; is another program "
                               "writing this prefix? re-run the same command")
        same = got[0] == size and (got[1] or self._hash(name)) == sha256
        if not same:
            raise OutputConflictError(
                f"{self.url}{name}: already holds a different object ({got[0]} bytes) than the {size}-byte file "
                "this pack made; nothing was overwritten: delete it, pack into another prefix or add --overwrite")
        log.info("%s%s: already uploaded (same size and sha256)", self.url, name)

    def _hash(self, name: str) -> str:
        """sha256 of object ``name``, streamed (for an object without shardkit's sha256 metadata)."""
        import obstore

        h = hashlib.sha256()
        try:
            for chunk in obstore.get(self._client(), name).stream(min_chunk_size=8 * MB):
                h.update(chunk)
        except Exception as exc:
            raise self._fail(exc, name, "read") from None
        return h.hexdigest()

    def finish(self, state: PackState, complete: bool) -> None:
        """Check that every shard and index of the state is in the prefix with its size; upload the
        manifest (staged by the writer) last — after the state when the budget stopped the pack, and
        deleting the state when it is complete."""
        self.wait_uploads()
        objects, _ = self.listing()
        for s in state.shards:
            for name, size in ((s["name"], s["bytes"]), (s["index"], s["index_bytes"])):
                if objects.get(name) != size:
                    raise StorageError(f"{self.url}{name}: missing from the prefix or not {size} bytes; was it "
                                       "deleted? re-run with --overwrite to start over")
        if not complete:
            self._put(PACK_STATE_NAME, state.to_bytes())
        self._put(MANIFEST_NAME, (self.staging / MANIFEST_NAME).read_bytes())
        if complete:
            self._delete([PACK_STATE_NAME, SOURCES_NAME])
