"""Where a shard set lives: a local folder or an object-store URL.

- :func:`is_url` / :func:`split_url`: ``s3://bucket/prefix/``, ``gs://…``, ``az://…``, ``http(s)://…``
  (a URL ending in ``.json`` names the manifest itself);
- the resolver table: a higher layer registers a scheme of its own (:func:`register_scheme`; shardkit
  registers ``kaggle://`` for :mod:`shardkit.kaggle.notebook`), and :func:`resolve_location` turns such a
  location into one the storages read. A resolver is named by a ``"module:function"`` string, loaded on
  first use, like an entry point: the storage layer never imports the layers that plug into it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["SCHEMES", "is_url", "load_target", "register_scheme", "resolve_location", "split_url"]

#: a location of a registered scheme → (a folder or URL storages read, folders to search for the shards
#: of a derived set's ancestors)
Resolver = Callable[[str], "tuple[str | os.PathLike[str], list[str | os.PathLike[str]]]"]
_RESOLVERS: dict[str, str | Resolver] = {}

#: URL schemes read through obstore
SCHEMES = ("s3", "s3a", "gs", "az", "abfs", "abfss", "adl", "azure", "http", "https")


def is_url(location: object) -> bool:
    """Whether ``location`` is an object-store URL (``scheme://…`` with a scheme of :data:`SCHEMES`)."""
    if not isinstance(location, str) or "://" not in location:
        return False
    return location.split("://", 1)[0].lower() in SCHEMES


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
