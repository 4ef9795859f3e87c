"""The codec registry: codec id → :class:`~shardkit.encode.Codec` class, and rebuilding a codec
from the map an index (``codec``) or a manifest (``audio``) carries.

A new built-in codec is one module under ``shardkit/encode/`` plus one line in :data:`CODECS`; a
codec from elsewhere (a plugin, a test) joins with :func:`register_codec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shardkit.encode.base import Codec
from shardkit.encode.mel_u8 import MelU8
from shardkit.encode.wav16 import Wav16
from shardkit.errors import FormatError, UnknownCodecError, UsageError

#: Every codec this shardkit reads and writes, by id.
CODECS: dict[str, type[Codec]] = {c.codec_id: c for c in (Wav16, MelU8)}
#: The codec of format version 1 sets, whose manifests name none.
DEFAULT_CODEC = Wav16.codec_id


def register_codec(cls: type[Codec]) -> type[Codec]:
    """Add ``cls`` to :data:`CODECS` under its ``codec_id`` (usable as a class decorator); the CLI's
    ``--format`` choices are the codecs registered when it starts. Raises :class:`UsageError` when the
    id is taken by another class."""
    known = CODECS.get(cls.codec_id)
    if known is not None and known is not cls:
        raise UsageError(f"codec id {cls.codec_id!r} is already {known.__module__}.{known.__qualname__}")
    CODECS[cls.codec_id] = cls
    return cls


def codec_ids() -> list[str]:
    """The ids of the known codecs, sorted."""
    return sorted(CODECS)


def pack_options() -> dict[str, tuple[type, str, list[str]]]:
    """Every codec's :attr:`~shardkit.encode.Codec.pack_options`: name → (type, help, ids of the codecs
    that take it), for a CLI to offer."""
    out: dict[str, tuple[type, str, list[str]]] = {}
    for cid in codec_ids():
        for name, (kind, text) in CODECS[cid].pack_options.items():
            out.setdefault(name, (kind, text, []))[2].append(cid)
    return out


def codec_class(codec_id: str) -> type[Codec]:
    """The codec class for ``codec_id``; raises :class:`UnknownCodecError` naming the known ones."""
    try:
        return CODECS[str(codec_id)]
    except KeyError:
        raise UnknownCodecError(f"codec {codec_id!r} is not one this shardkit knows ({codec_ids()}); "
                                "upgrade shardkit (pip install -U shardkit) if a newer one wrote it") from None


def codec_id_of(config: Mapping[str, Any]) -> str:
    """The codec id of an index's ``codec`` map (key ``codec_id``) or a manifest's ``audio`` map
    (key ``codec``; version 1 manifests have none and are wav16)."""
    return str(config.get("codec_id", config.get("codec", DEFAULT_CODEC)))


def get_codec(config: Mapping[str, Any]) -> Codec:
    """The codec described by an index's ``codec`` map or a manifest's ``audio`` map.

    Raises :class:`UnknownCodecError` for an unknown id and :class:`FormatError` for a malformed map;
    callers add the file name.
    """
    cls = codec_class(codec_id_of(config))
    try:
        return cls.from_config(config)
    except FormatError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"the {cls.codec_id} codec map is not valid ({exc!r}): {dict(config)}") from exc
