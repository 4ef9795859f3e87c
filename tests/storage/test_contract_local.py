"""The storage contract on :class:`~shardkit.storage.local.LocalStorage` (a folder), with each read-ahead mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from storage_contract import StorageContract

from shardkit.files import atomic_write
from shardkit.storage.local import LocalStorage


def put_file(folder: Path, name: str, data: bytes) -> None:
    """``folder/name`` = ``data``, as a new file (temp + rename: a new inode, like a re-download)."""
    atomic_write(Path(folder) / name, data)
    os.utime(Path(folder) / name, ns=(1, 1 + len(os.listdir(folder))))  # a new mtime even on a coarse clock


class TestLocalStorage(StorageContract):
    def put(self, where: Path, name: str, data: bytes) -> None:
        put_file(where, name, data)

    def open(self, where: Path) -> LocalStorage:
        return LocalStorage(where)


@pytest.mark.parametrize("mode", ["fadvise", "read"])
class TestLocalStorageReadingAhead(TestLocalStorage):
    @pytest.fixture(autouse=True)
    def _mode(self, mode: str) -> None:
        self.mode = mode

    def open(self, where: Path) -> LocalStorage:
        return LocalStorage(where, readahead=self.mode)
