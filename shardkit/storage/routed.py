"""A storage that reads each object where it was found: a derived set's own folder, and the folders its
ancestors' shards lie in (:func:`shardkit.read.lineage.resolve` finds them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shardkit.storage.base import Storage
from shardkit.storage.local import LocalStorage

__all__ = ["RoutedStorage"]


class RoutedStorage:
    """A :class:`~shardkit.storage.base.Storage` over the set's own folder and the folders its
    ancestors' shards were found in: each name is read where :func:`shardkit.read.lineage.resolve` found it."""

    def __init__(self, base: Storage, routes: dict[str, Path]) -> None:
        self.base = base
        self.routes = dict(routes)
        self._stores = {folder: LocalStorage(folder, readahead=getattr(base, "readahead", "off"))
                        for folder in sorted(set(self.routes.values()))}

    def _for(self, name: str) -> Any:
        folder = self.routes.get(name)
        return self.base if folder is None else self._stores[folder]

    @property
    def readahead(self) -> str:
        return str(getattr(self.base, "readahead", "off"))

    @readahead.setter
    def readahead(self, mode: str) -> None:
        for s in [self.base, *self._stores.values()]:
            if hasattr(s, "readahead"):
                s.readahead = mode

    @property
    def reads_ahead(self) -> bool:
        return bool(getattr(self.base, "reads_ahead", False))

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

    def path(self, name: str) -> Path:
        folder = self.routes.get(name)
        return folder / name if folder is not None else self.base.path(name)  # type: ignore[attr-defined]

    def close(self) -> None:
        for s in [self.base, *self._stores.values()]:
            s.close()
