"""The contract every :class:`~shardkit.storage.base.Storage` keeps, as one base class of tests (zarr's
``StoreTests`` pattern): a storage's test module subclasses :class:`StorageContract` and says how to put
objects where the storage reads them (:meth:`StorageContract.put`) and how to open the storage
(:meth:`StorageContract.open`). The same tests then run against every storage: whole objects, ranges,
short reads, missing objects, an object replaced under a reader (identity / ETag), threads, pickling,
read-ahead hints, and a forked child process that reads.

Objects are the shards of a set to the reader: names relative to the storage's root, a few hundred KB.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from shardkit.storage.base import Extent, OpenFailed, ShardChanged, ShortRead, Storage

ROOT = Path(__file__).resolve().parents[2]
SIZE = 300_000


def payload(seed: int, size: int = SIZE) -> bytes:
    """``size`` bytes, different for every seed."""
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def _ranges(data: bytes, spans: list[tuple[int, int]]) -> list[tuple[int, int, memoryview]]:
    return [(a, n, memoryview(bytearray(n))) for a, n in spans]


class StorageContract:
    """The tests; a subclass provides :meth:`put` and :meth:`open` (and may refine the class attributes)."""

    #: objects the tests start with: name → bytes
    OBJECTS: ClassVar[dict[str, bytes]] = {"shard-00000.tar": payload(0), "shard-00001.tar": payload(1, 4096),
                                           "manifest.json": b'{"x": 1}'}

    # -- what a storage's test module provides ------------------------------------------------------

    def put(self, where: Any, name: str, data: bytes) -> None:
        """Write (or replace, as a new object) ``name`` with ``data`` where the storage reads it."""
        raise NotImplementedError

    def open(self, where: Any) -> Storage:
        """The storage under test, reading the objects :meth:`put` wrote."""
        raise NotImplementedError

    @pytest.fixture
    def where(self, tmp_path: Path) -> Any:
        """Where the objects live (a folder by default; a subclass may override with a bucket)."""
        return tmp_path

    @pytest.fixture
    def storage(self, where: Any) -> Any:
        for name, data in self.OBJECTS.items():
            self.put(where, name, data)
        st = self.open(where)
        yield st
        st.close()

    # -- the contract ------------------------------------------------------------------------------

    def test_is_a_storage(self, storage: Storage) -> None:
        assert isinstance(storage, Storage)
        caps = storage.capabilities
        assert isinstance(caps.reads_ahead, bool) and isinstance(caps.checks_members, bool)

    def test_whole_objects_and_sizes(self, storage: Storage) -> None:
        for name, data in self.OBJECTS.items():
            assert storage.size(name) == len(data)
            assert storage.read_bytes(name) == data
            assert name in storage.describe(name)

    def test_ranges_fill_their_buffers(self, storage: Storage) -> None:
        data = self.OBJECTS["shard-00000.tar"]
        spans = [(0, 512), (512, 100), (4000, 70_000), (200_000, 1), (SIZE - 1000, 1000)]
        ranges = _ranges(data, spans)
        assert storage.read_into("shard-00000.tar", ranges) == []
        for (a, n, dest) in ranges:
            assert bytes(dest) == data[a:a + n]

    def test_a_buffer_larger_than_its_range_is_filled_to_the_length(self, storage: Storage) -> None:
        data = self.OBJECTS["shard-00000.tar"]
        dest = memoryview(bytearray(b"\xee" * 64))
        assert storage.read_into("shard-00000.tar", [(100, 16, dest)]) == []
        assert bytes(dest[:16]) == data[100:116] and bytes(dest[16:]) == b"\xee" * 48

    def test_a_range_past_the_end_is_a_short_read_and_the_others_are_filled(self, storage: Storage) -> None:
        data = self.OBJECTS["shard-00001.tar"]
        ranges = _ranges(data, [(0, 100), (4000, 200)])
        errors = storage.read_into("shard-00001.tar", ranges)
        assert [k for k, _ in errors] == [1]
        err = errors[0][1]
        assert isinstance(err, ShortRead) and (err.got, err.wanted, err.offset) == (96, 200, 4000)
        assert bytes(ranges[0][2]) == data[:100]

    def test_a_missing_object(self, storage: Storage) -> None:
        with pytest.raises(FileNotFoundError):
            storage.size("shard-00009.tar")
        with pytest.raises(FileNotFoundError):
            storage.read_bytes("shard-00009.tar")
        errors = storage.read_into("shard-00009.tar", _ranges(b"", [(0, 10), (100, 10)]))
        assert [k for k, _ in errors] == [0, 1]
        assert all(isinstance(e, OpenFailed | FileNotFoundError) for _, e in errors), errors

    def test_an_object_replaced_after_the_set_was_opened_is_refused(self, storage: Storage, where: Any) -> None:
        name = "shard-00000.tar"
        assert storage.size(name) == SIZE  # the reader opened the set: the object's identity is recorded
        self.put(where, name, payload(7))  # same size, other bytes, a new object
        errors = storage.read_into(name, _ranges(b"", [(150_000, 100), (250_000, 100)]))
        assert [k for k, _ in errors] == [0, 1]
        assert all(isinstance(e, ShardChanged) for _, e in errors), errors

    def test_an_object_replaced_while_it_is_read_never_gives_the_new_bytes(self, storage: Storage, where: Any
                                                                          ) -> None:
        """A storage may go on serving the object it opened (a held descriptor, a verified cache entry) or
        refuse; it never mixes in the new object's bytes, before or after close()."""
        name, old = "shard-00000.tar", self.OBJECTS["shard-00000.tar"]
        assert storage.size(name) == SIZE
        assert storage.read_into(name, _ranges(b"", [(0, 100)])) == []
        self.put(where, name, payload(7))
        for _ in range(2):
            ranges = _ranges(b"", [(150_000, 100), (250_000, 100)])
            failed = dict(storage.read_into(name, ranges))
            for k, (a, n, dest) in enumerate(ranges):
                assert isinstance(failed[k], ShardChanged) if k in failed else bytes(dest) == old[a:a + n]
            storage.close()

    def test_threads_read_at_once(self, storage: Storage) -> None:
        data = self.OBJECTS["shard-00000.tar"]
        bad: list[Any] = []

        def work(seed: int) -> None:
            rng = np.random.default_rng(seed)
            for _ in range(20):
                a = int(rng.integers(0, SIZE - 5000))
                n = int(rng.integers(1, 5000))
                ranges = _ranges(data, [(a, n)])
                errors = storage.read_into("shard-00000.tar", ranges)
                if errors or bytes(ranges[0][2]) != data[a:a + n]:
                    bad.append((a, n, errors))

        threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not bad

    def test_a_pickled_copy_reads_the_same(self, storage: Storage) -> None:
        copy = pickle.loads(pickle.dumps(storage))
        ranges = _ranges(b"", [(10, 1000)])
        assert copy.read_into("shard-00000.tar", ranges) == []
        assert bytes(ranges[0][2]) == self.OBJECTS["shard-00000.tar"][10:1010]
        copy.close()

    def test_read_ahead_hints_change_no_byte(self, storage: Storage) -> None:
        data = self.OBJECTS["shard-00000.tar"]
        members = [Extent(a, n, zlib.crc32(data[a:a + n])) for a, n in ((0, 50_000), (60_000, 30_000))]
        storage.prefetch("shard-00000.tar", members)
        ranges = _ranges(data, [(100, 1000), (65_000, 2000)])
        assert storage.read_into("shard-00000.tar", ranges) == []
        assert [bytes(d) for _, _, d in ranges] == [data[100:1100], data[65_000:67_000]]

    def test_stream_hands_on_the_whole_object(self, storage: Storage) -> None:
        pieces: list[bytes] = []
        assert storage.stream("shard-00000.tar", lambda piece: pieces.append(bytes(piece))) == SIZE
        assert b"".join(pieces) == self.OBJECTS["shard-00000.tar"]

    def test_close_then_read_again(self, storage: Storage) -> None:
        storage.close()
        ranges = _ranges(b"", [(5, 5)])
        assert storage.read_into("shard-00000.tar", ranges) == []
        assert bytes(ranges[0][2]) == self.OBJECTS["shard-00000.tar"][5:10]

    def test_a_forked_child_reads(self, storage: Storage) -> None:
        """In a fresh process: a child forked before the parent read gets the bytes; a child forked after
        it gets the bytes or a UsageError saying to use spawn (object stores), and never hangs."""
        script = (
            "import os, pickle, sys\n"
            "st = pickle.loads(sys.stdin.buffer.read())\n"
            "def child():\n"
            "    r, w = os.pipe()\n"
            "    pid = os.fork()\n"
            "    if pid == 0:\n"
            "        os.close(r)\n"
            "        try:\n"
            "            buf = bytearray(64)\n"
            "            errs = st.read_into('shard-00000.tar', [(1000, 64, memoryview(buf))])\n"
            "            out = b'E' + repr(errs).encode() if errs else b'B' + bytes(buf)\n"
            "        except Exception as exc:\n"
            "            out = b'X' + type(exc).__name__.encode()\n"
            "        os.write(w, out); os._exit(0)\n"
            "    os.close(w)\n"
            "    got = os.read(r, 4096); os.waitpid(pid, 0)\n"
            "    return got\n"
            "first = child()\n"
            "buf = bytearray(64); assert not st.read_into('shard-00000.tar', [(1000, 64, memoryview(buf))])\n"
            "second = child()\n"
            "sys.stdout.buffer.write(pickle.dumps((first, bytes(buf), second)))\n"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"),
                                                             os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run([sys.executable, "-c", script], input=pickle.dumps(storage), capture_output=True,
                              env=env, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        first, parent, second = pickle.loads(proc.stdout)
        want = self.OBJECTS["shard-00000.tar"][1000:1064]
        assert first == b"B" + want and parent == want
        assert second in (b"B" + want, b"XUsageError"), second
