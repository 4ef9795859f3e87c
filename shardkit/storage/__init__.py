"""The storage layer, the bottom of shardkit: byte ranges of named objects, nothing of shards.

:class:`Storage` (:mod:`shardkit.storage.base`) is the one seam every byte is read through;
:class:`LocalStorage` reads a folder (:mod:`~shardkit.storage.local`), :class:`ObjectStorage` an
``s3://``/``gs://``/``az://``/``http(s)://`` URL through obstore (:mod:`~shardkit.storage.object`, with
:mod:`~shardkit.storage.windows` and the disk cache of :mod:`~shardkit.storage.cache`),
:class:`RoutedStorage` each object where it was found (:mod:`~shardkit.storage.routed`). URL syntax lives
in :mod:`~shardkit.storage.location`, obstore's plumbing in :mod:`~shardkit.storage.obstore`.
``ObjectStorage`` and ``RoutedStorage`` are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shardkit.storage.base import (
    MAX_OBJECT_BYTES,
    ByteRange,
    Capabilities,
    Extent,
    OpenFailed,
    ShardChanged,
    ShortRead,
    Storage,
)
from shardkit.storage.local import LocalStorage

if TYPE_CHECKING:
    from shardkit.storage.cache.wrapper import CachedStorage
    from shardkit.storage.location import Location, open_storage, register_storage
    from shardkit.storage.object import ObjectStorage
    from shardkit.storage.routed import RoutedStorage

__all__ = ["MAX_OBJECT_BYTES", "ByteRange", "CachedStorage", "Capabilities", "Extent", "LocalStorage", "Location",
           "ObjectStorage", "OpenFailed", "RoutedStorage", "ShardChanged", "ShortRead", "Storage", "open_storage",
           "register_storage"]

_LAZY = {"ObjectStorage": "shardkit.storage.object", "open_storage": "shardkit.storage.location",
         "Location": "shardkit.storage.location", "register_storage": "shardkit.storage.location",
         "CachedStorage": "shardkit.storage.cache.wrapper",
         "RoutedStorage": "shardkit.storage.routed"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
