"""The streaming helper of storage/windows.py: pieces reach ``write`` in order from another thread, and an
error of ``write`` reaches the streaming caller (a full cache disk must still be told apart)."""

from __future__ import annotations

import errno
import threading

import pytest

from shardkit.storage.windows import STREAM_DEPTH, _handed_on


def test_pieces_reach_write_in_order_from_another_thread():
    got, threads = [], set()

    def write(piece):
        threads.add(threading.get_ident())
        got.append(piece)

    with _handed_on(write) as put:
        for k in range(50):
            put(bytes([k]))
    assert got == [bytes([k]) for k in range(50)] and threading.get_ident() not in threads


def test_an_error_of_write_reaches_the_caller_and_nothing_after_it_is_written():
    got = []

    def write(piece):
        if piece == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        got.append(piece)

    with pytest.raises(OSError) as caught, _handed_on(write) as put:
        for k in range(10 + STREAM_DEPTH):
            put(k)
    assert caught.value.errno == errno.ENOSPC and got == [0, 1, 2]


def test_an_error_of_the_transfer_stops_the_writer():
    seen = []
    with pytest.raises(RuntimeError, match="reset"), _handed_on(seen.append) as put:
        put(1)
        raise RuntimeError("connection reset")
    assert seen == [1]
