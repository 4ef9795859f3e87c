"""A storage that reads each object where it was found: a derived set's own folder, and the folders its
ancestors' shards lie in (:func:`shardkit.read.lineage.resolve` finds them)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shardkit.storage.base import Capabilities, Storage
from shardkit.storage.local import LocalStorage

__all__ = ["RoutedStorage"]


class RoutedStorage(Storage):
    """A :class:`~shardkit.storage.base.Storage` over the set's own folder and the folders its
    ancestors' shards were found in: each name is read where :func:`shardkit.read.lineage.resolve` found it."""

    def __init__(self, base: Storage, routes: dict[str, Path]) -> None:
        self.base = base
        self.routes = dict(routes)
        mode = base.readahead if isinstance(base, LocalStorage) else "off"
        self._stores = {folder: LocalStorage(folder, readahead=mode) for folder in sorted(set(self.routes.values()))}

    def _for(self, name: str) -> Any:
        folder = self.routes.get(name)
        return self.base if folder is None else self._stores[folder]

    @property
    def capabilities(self) -> Capabilities:
        """The set's own storage's (the ancestors' folders read the same way)."""
        return self.base.capabilities

    def set_readahead(self, mode: str) -> None:
        for s in [self.base, *self._stores.values()]:
            s.set_readahead(mode)

    def open_set(self, manifest: str) -> None:
        self.base.open_set(manifest)

    def bind_members(self, members: Any) -> None:
        self.base.bind_members(members)

    def read_bytes(self, name: str) -> bytes:
        return self._for(name).read_bytes(name)

    def size(self, name: str) -> int:
        return self._for(name).size(name)

    def read_into(self, name: str, ranges: Any) -> Any:
        return self._for(name).read_into(name, ranges)

    def prefetch(self, name: str, extents: Any) -> None:
        self._for(name).prefetch(name, extents)

    def describe(self, name: str) -> str:
        return self._for(name).describe(name)

    def resident_share(self, names: Sequence[str]) -> float | None:
        """The base folder's answer when every one of ``names`` lives there; None (unknown) otherwise."""
        return None if any(n in self.routes for n in names) else self.base.resident_share(names)

    def local_path(self, name: str) -> Path | None:
        folder = self.routes.get(name)
        return folder / name if folder is not None else self.base.local_path(name)

    def close(self) -> None:
        for s in [self.base, *self._stores.values()]:
            s.close()
