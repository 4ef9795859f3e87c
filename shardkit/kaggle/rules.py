"""Kaggle's dataset rules, checked locally before a long upload (Kaggle checks them only on the server).

From the ``kaggle`` 2.2.5 client's own checks and Kaggle's dataset-metadata documentation: an id
``OWNER/SLUG`` (slug 6–50 characters: letters, digits, ``-``), a title of 6–50 characters, an
optional subtitle of 20–80, exactly one license from Kaggle's list, at most 50 top-level files and
200 GB per dataset. Files whose names end like an archive may be unpacked on the server.
"""

from __future__ import annotations

import re
import unicodedata

from shardkit.errors import UsageError

#: license names ``dataset-metadata.json`` accepts (Kaggle's datasets_metadata documentation)
LICENSES = (
    "CC0-1.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC-BY-NC-SA-4.0", "GPL-2.0", "ODbL-1.0", "DbCL-1.0",
    "copyright-authors", "other", "unknown", "CC-BY-4.0", "CC-BY-NC-4.0", "PDDL", "CC-BY-3.0", "CC-BY-3.0-IGO",
    "US-Government-Works", "CC-BY-NC-SA-3.0-IGO", "CDLA-Permissive-1.0", "CDLA-Sharing-1.0", "CC-BY-ND-4.0",
    "CC-BY-NC-ND-4.0", "ODC-BY-1.0", "LGPL-3.0", "AGPL-3.0", "FDL-1.3", "EU-ODP-Legal-Notice", "apache-2.0",
    "GPL-3.0",
)
#: at most this many top-level files in one dataset (dataset-metadata.json itself is not uploaded as one)
MAX_FILES = 50
#: at most this many bytes in one dataset (200 GB)
MAX_BYTES = 200 * 10**9
#: name endings Kaggle may unpack on the server (an unpacked shard is a folder: every offset breaks)
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".tbz", ".tbz2", ".xz", ".txz", ".7z", ".rar", ".zst")

_SLUG = re.compile(r"[A-Za-z0-9-]{6,50}")
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,49}")


def split_id(dataset_id: str) -> tuple[str, str]:
    """``(owner, slug)`` of ``OWNER/SLUG``; :class:`UsageError` naming the rule it breaks."""
    owner, sep, slug = str(dataset_id).strip().partition("/")
    if not sep or "/" in slug or not _OWNER.fullmatch(owner):
        raise UsageError(f"dataset id {dataset_id!r}: must be OWNER/SLUG, OWNER your Kaggle user or organisation "
                         "name (e.g. --id alice/birdclef-shards)")
    if not _SLUG.fullmatch(slug):
        raise UsageError(f"dataset id {dataset_id!r}: the slug {slug!r} must be 6-50 characters of letters, digits "
                         f"and '-' (it has {len(slug)}) — Kaggle's rule for dataset slugs")
    return owner, slug


def check_text(title: str, subtitle: str | None) -> None:
    """Title 6–50 characters; subtitle (when given) 20–80; neither with a control character (a newline, a
    tab, a NUL: Kaggle shows one line)."""
    for name, text in (("title", title), ("subtitle", subtitle or "")):
        bad = next((c for c in text if unicodedata.category(c) == "Cc"), None)
        if bad is not None:
            raise UsageError(f"{name} {text!r}: holds the control character {bad!r} (U+{ord(bad):04X}); a Kaggle "
                             f"{name} is one line of plain text")
    if not 6 <= len(title.strip()) <= 50:
        raise UsageError(f"title {title!r}: must be 6-50 characters (it has {len(title.strip())}) — Kaggle's rule "
                         "for dataset titles")
    if subtitle is not None and not 20 <= len(subtitle.strip()) <= 80:
        raise UsageError(f"subtitle {subtitle!r}: must be 20-80 characters (it has {len(subtitle.strip())}) — "
                         "Kaggle's rule for dataset subtitles")


def check_license(name: str) -> str:
    """The license name as Kaggle spells it (case-insensitive match); :class:`UsageError` otherwise."""
    for known in LICENSES:
        if known.lower() == name.strip().lower():
            return known
    raise UsageError(f"license {name!r}: not one Kaggle accepts; use one of {', '.join(LICENSES)}")


def is_archive_name(name: str) -> bool:
    """Whether Kaggle may treat a file of this name as an archive and unpack it."""
    return name.lower().endswith(ARCHIVE_SUFFIXES)
