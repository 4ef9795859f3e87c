"""Where a shard set lives: a :class:`Location` (a scheme and a root), and the tables that turn one into
a :class:`~shardkit.storage.base.Storage`.

- :class:`Location`: ``file`` and a folder on this machine, or an object-store URL (``s3://bucket/prefix/``,
  ``gs://…``, ``az://…``, ``http(s)://…``); every "local or remote?" decision asks one
  (:attr:`Location.is_local`). :meth:`Location.of_set` also splits off the manifest's name (a path or
  URL ending in ``.json`` names the manifest itself).
- the storage table: scheme → the storage class that reads it (:func:`register_storage`;
  :func:`open_storage` opens a location with it). ``file`` is :class:`~shardkit.storage.local.LocalStorage`,
  the object-store schemes :class:`~shardkit.storage.object.ObjectStorage`.
- the resolver table: a higher layer registers a scheme of its own (:func:`register_scheme`; shardkit
  registers ``kaggle://`` for :mod:`shardkit.kaggle.notebook`), and :func:`resolve_location` turns such a
  location into one the storages read. A resolver is named by a ``"module:function"`` string, loaded on
  first use, like an entry point: the storage layer never imports the layers that plug into it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shardkit.errors import UsageError

if TYPE_CHECKING:
    from shardkit.storage.base import Storage

__all__ = ["SCHEMES", "Location", "is_url", "load_target", "open_storage", "register_scheme", "register_storage",
           "resolve_location", "split_url"]

#: a location of a registered scheme → (a folder or URL storages read, folders to search for the shards
#: of a derived set's ancestors)
Resolver = Callable[[str], "tuple[str | os.PathLike[str], list[str | os.PathLike[str]]]"]
_RESOLVERS: dict[str, str | Resolver] = {}

#: URL schemes read through obstore
SCHEMES = ("s3", "s3a", "gs", "az", "abfs", "abfss", "adl", "azure", "http", "https")
#: scheme → the storage class that reads it (``"module:Class"``, imported on first use)
_STORAGES: dict[str, Any] = {"file": "shardkit.storage.local:LocalStorage",
                             **dict.fromkeys(SCHEMES, "shardkit.storage.object:ObjectStorage")}


def is_url(location: object) -> bool:
    """Whether ``location`` is a URL of a scheme some storage reads (``scheme://…``, not ``file``)."""
    if not isinstance(location, str) or "://" not in location:
        return False
    scheme = location.split("://", 1)[0].lower()
    return scheme != "file" and scheme in _STORAGES


@dataclass(frozen=True)
class Location:
    """Where a set's objects are: ``scheme`` (``"file"`` for a folder on this machine, else the URL's scheme)
    and ``root`` (the folder's path, or the URL ending in ``/``). ``str()`` gives the path or URL; a local
    location is also an ``os.PathLike``."""

    scheme: str
    root: str

    @classmethod
    def parse(cls, location: str | os.PathLike[str] | Location) -> Location:
        """The location of a folder path or a URL of a registered scheme (a root, not a manifest's path)."""
        if isinstance(location, Location):
            return location
        if is_url(location):
            text = str(location)
            return cls(text.split("://", 1)[0].lower(), text.rstrip("/") + "/")
        return cls("file", os.fspath(location))

    @classmethod
    def of_set(cls, location: str | os.PathLike[str], manifest: str) -> tuple[Location, str]:
        """``(location of the set, manifest name)`` of a set's folder or URL, or of its manifest (a path or
        URL ending in ``.json``; any other names the folder, whose manifest is ``manifest``)."""
        if is_url(location):
            root, name = split_url(str(location), manifest)
            return cls.parse(root), name
        p = Path(location)
        if p.is_dir() or p.suffix != ".json":
            return cls("file", os.fspath(p)), manifest
        return cls("file", os.fspath(p.parent)), p.name

    @property
    def is_local(self) -> bool:
        """A folder on this machine (read in place, by path)."""
        return self.scheme == "file"

    @property
    def path(self) -> Path:
        """The folder of a local location; :class:`UsageError` for a URL."""
        if not self.is_local:
            raise UsageError(f"{self.root}: is on object storage, not a folder on this machine")
        return Path(self.root)

    @property
    def native(self) -> Path | str:
        """The folder's ``Path``, or the URL (a ``str`` ending in ``/``)."""
        return Path(self.root) if self.is_local else self.root

    def __str__(self) -> str:
        return str(self.native)

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __truediv__(self, name: str) -> str | Path:
        """The path or URL of object ``name`` under this root."""
        return self.path / name if self.is_local else self.root + name


def register_storage(scheme: str, storage: str | type) -> None:
    """Read ``scheme://…`` locations with ``storage``: a :class:`~shardkit.storage.base.Storage` class or
    ``"package.module:Class"`` imported on first use; :meth:`~shardkit.storage.base.Storage.from_location`
    makes it. Registering a scheme again replaces its storage."""
    _STORAGES[scheme.lower()] = storage


def open_storage(location: str | os.PathLike[str] | Location,
                 storage_options: Mapping[str, Any] | None = None) -> Storage:
    """The storage of a set's root (a folder, a URL or a :class:`Location`) from the storage table:
    :class:`~shardkit.storage.local.LocalStorage` of a folder, :class:`~shardkit.storage.object.ObjectStorage`
    of an object-store URL (with ``storage_options``)."""
    loc = Location.parse(location)
    storage = _STORAGES.get(loc.scheme)
    if storage is None:
        raise UsageError(f"{loc}: no storage reads {loc.scheme}:// locations")
    return load_target(storage).from_location(loc, storage_options)


def split_url(url: str, default_name: str) -> tuple[str, str]:
    """``(root URL ending in '/', object name)``: a URL ending in ``.json`` names the object (a manifest),
    any other names the folder, whose object is ``default_name``."""
    if url.endswith(".json"):
        root, _, name = url.rpartition("/")
        return root + "/", name
    return url.rstrip("/") + "/", default_name


def register_scheme(scheme: str, resolver: str | Resolver) -> None:
    """Resolve locations ``scheme://…`` with ``resolver``: a callable, or ``"package.module:function"``
    imported on first use. Registering a scheme again replaces its resolver."""
    _RESOLVERS[scheme.lower()] = resolver


def load_target(target: str | Callable[..., Any]) -> Callable[..., Any]:
    """The function a ``"module:function"`` string names (a callable is returned as it is)."""
    if callable(target):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def resolve_location(location: str | os.PathLike[str], search_path: Sequence[str | os.PathLike[str]] | None
                     ) -> tuple[str | os.PathLike[str], Sequence[str | os.PathLike[str]] | None]:
    """``(location, search_path)`` with a location of a registered scheme resolved (its extra search
    folders appended); any other location unchanged."""
    if not isinstance(location, str) or "://" not in location:
        return location, search_path
    resolver = _RESOLVERS.get(location.split("://", 1)[0].lower())
    if resolver is None:
        return location, search_path
    found, more = load_target(resolver)(location)
    return found, [*(search_path or []), *more]
