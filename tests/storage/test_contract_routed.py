"""The storage contract on :class:`~shardkit.storage.routed.RoutedStorage`: a derived set's own folder, and the
folder an ancestor's shards were found in; every object the tests read is routed to the ancestor's."""

from __future__ import annotations

from pathlib import Path

from storage_contract import StorageContract
from test_contract_local import put_file

from shardkit.storage.local import LocalStorage
from shardkit.storage.routed import RoutedStorage


class TestRoutedStorage(StorageContract):
    def put(self, where: Path, name: str, data: bytes) -> None:
        (where / "parent").mkdir(exist_ok=True)
        put_file(where / "parent", name, data)

    def open(self, where: Path) -> RoutedStorage:
        (where / "derived").mkdir(exist_ok=True)
        routes = {name: where / "parent" for name in [*self.OBJECTS, "shard-00009.tar"]}
        return RoutedStorage(LocalStorage(where / "derived"), routes)
