"""Find the recordings to pack: a folder scan and/or a BirdCLEF-style metadata CSV.

Nothing here decodes audio; it lists :class:`SourceItem` s (file, labels, extra columns) and
:class:`Reject` s (rows that name a missing file, rows with unreadable labels).
"""

from __future__ import annotations

import ast
import csv
import functools
import hashlib
import io
import json
import logging
import os
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shardkit.errors import MetadataError, SourceError
from shardkit.format import MAX_KEY_LEN

logger = logging.getLogger(__name__)

#: File extensions found by a folder scan (lower case).
AUDIO_EXTENSIONS = (".ogg", ".oga", ".flac", ".mp3", ".wav", ".opus")
#: A ``secondary_labels`` cell longer than this is refused (literal_eval of a hostile cell can recurse
#: or allocate without bound).
MAX_LABEL_CELL = 10_000
#: Columns with a meaning of their own; every other CSV column is kept as per-sample ``extra``.
FILENAME_COL, PRIMARY_COL, SECONDARY_COL = "filename", "primary_label", "secondary_labels"
#: BirdCLEF's CSV filenames are relative to one of these folders of the competition's data (2021: the second)
AUDIO_SUBFOLDERS = ("train_audio", "train_short_audio")

Order = Literal["shuffled", "sorted"]


@dataclass(frozen=True)
class Reject:
    """A source that was not packed: the file (relative to SRC), its CSV row (1-based) and why."""

    file: str
    row: int | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "row": self.row, "reason": self.reason}


@dataclass(frozen=True)
class SourceItem:
    """One recording to pack."""

    path: str                      #: absolute path of the audio file
    rel: str                       #: path relative to SRC, '/'-separated
    stem: str                      #: the key stem (unique in the pack); keys are f"{stem}-{segment:04d}"
    row: int | None                #: 1-based data row of the metadata CSV, None from a folder scan
    primary_label: str | None
    secondary_labels: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sources:
    """What :func:`discover_sources` found: the items in pack order, the rejects, and the metadata CSV's
    extra columns typed one type per column (:func:`column_types`)."""

    items: list[SourceItem]
    rejects: list[Reject]
    columns: dict[str, str] = field(default_factory=dict)  #: extra column → "int" | "float" | "str" | "list"
    coerced: tuple[str, ...] = ()  #: columns stored otherwise than cell by cell before (mixed types; lists)


def discover(
    src: str | os.PathLike[str],
    metadata: str | os.PathLike[str] | None = None,
    *,
    order: Order = "shuffled",
    extensions: Sequence[str] = AUDIO_EXTENSIONS,
    follow_symlinks: bool = False,
) -> tuple[list[SourceItem], list[Reject]]:
    """List the recordings under ``src`` (recursively) or those a metadata CSV names.

    Without ``metadata`` every file with an audio extension is a source, labelled with its parent
    folder's name (none for files directly in ``src``). With ``metadata`` the CSV decides: one
    source per row, ``filename`` relative to ``src``. Returns the items in pack order (``order``:
    ``"shuffled"`` by a keyed hash of the path so shards mix labels, or ``"sorted"`` by path) and
    the rows that cannot be packed.

    Symlinks, one rule for the scan and the CSV: one that stays inside ``src`` is followed; one that
    leads outside (``ln -s /kaggle/input/<comp>/train_audio/* src/``) is a reject saying so, unless
    ``follow_symlinks`` (then its files are read, each folder once, loops ignored). CSV rows with an
    absolute path or ``..`` are refused either way.
    """
    found = discover_sources(src, metadata, order=order, extensions=extensions, follow_symlinks=follow_symlinks)
    return found.items, found.rejects


def discover_sources(src: str | os.PathLike[str], metadata: str | os.PathLike[str] | None = None, *,
                     order: Order = "shuffled", extensions: Sequence[str] = AUDIO_EXTENSIONS,
                     follow_symlinks: bool = False) -> Sources:
    """:func:`discover`, with the CSV's column types (:class:`Sources`)."""
    root = Path(src)
    if not root.is_dir():
        raise SourceError(f"{root}: source folder not found (give the folder holding the audio files)")
    columns: dict[str, str] = {}
    coerced: tuple[str, ...] = ()
    if metadata is not None:
        items, rejects, columns, coerced = _from_csv(root, Path(metadata), follow_symlinks)
    else:
        items, rejects = _from_folder(root, extensions, follow_symlinks)
        if not items and not rejects:
            raise SourceError(
                f"{root}: no audio files ({', '.join(extensions)}) found; pass --metadata CSV or another folder"
            )
    items = _assign_stems(items)
    if order == "sorted":
        items.sort(key=lambda it: it.rel)
    elif order == "shuffled":
        items.sort(key=lambda it: (hashlib.blake2b(it.rel.encode(), digest_size=8, person=b"skorder").digest(), it.rel))
    else:
        raise SourceError(f"order must be 'shuffled' or 'sorted', got {order!r}")
    return Sources(items, rejects, columns, coerced)


def vocabulary_of(items: Iterable[SourceItem]) -> list[str]:
    """Sorted set of every primary and secondary label."""
    labels: set[str] = set()
    for it in items:
        if it.primary_label:
            labels.add(it.primary_label)
        labels.update(it.secondary_labels)
    return sorted(labels)


def _from_folder(root: Path, extensions: Sequence[str], follow: bool) -> tuple[list[SourceItem], list[Reject]]:
    exts = {e.lower() for e in extensions}
    items, rejects = [], []
    walked: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=follow):
        real = os.path.realpath(dirpath)
        if real in walked:  # a folder reached twice through symlinks, or a loop
            dirnames[:] = []
            continue
        walked.add(real)
        dirnames.sort()
        for name in dirnames if not follow else ():
            if os.path.islink(os.path.join(dirpath, name)) and not _inside(root, Path(dirpath) / name):
                rel = (Path(dirpath) / name).relative_to(root).as_posix()
                rejects.append(Reject(rel, None, symlink_reason(Path(dirpath) / name, "folder")))
        for name in sorted(filenames):
            if os.path.splitext(name)[1].lower() not in exts:
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if not _utf8(rel):
                shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
                rejects.append(Reject(shown, None, "bad file name: not valid UTF-8; rename the file"))
                continue
            if not follow and not _inside(root, path):
                rejects.append(Reject(rel, None, symlink_reason(path, "file")))
                continue
            parent = path.parent.name if path.parent != root else None
            items.append(SourceItem(str(path), rel, "", None, parent, (), {}))
    return items, rejects


def symlink_reason(path: Path, what: str) -> str:
    """The reject reason for a source reached through a symlink that leads outside SRC."""
    try:
        target = str(path.resolve())
    except (OSError, RuntimeError, ValueError):
        target = "a place that does not resolve"
    return (f"symlink: this {what} leads outside SRC (to {target}); pass --follow-symlinks "
            "(pack(follow_symlinks=True)) to read sources through symlinks")


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_csv_text(metadata: Path) -> str:
    """The CSV's text: UTF-8 (with or without BOM) or UTF-16 with a BOM; anything else is named."""
    try:
        data = metadata.read_bytes()
    except FileNotFoundError as exc:
        raise MetadataError(f"{metadata}: metadata CSV not found") from exc
    except OSError as exc:
        raise MetadataError(f"{metadata}: cannot read the metadata CSV ({exc.strerror or exc})") from exc
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise MetadataError(f"{metadata}: starts like UTF-16 but is not ({exc.reason})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MetadataError(
            f"{metadata}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}; Latin-1 or cp1252?); "
            "save the CSV as UTF-8 and re-run") from None


def _from_csv(root: Path, metadata: Path, follow: bool
              ) -> tuple[list[SourceItem], list[Reject], dict[str, str], tuple[str, ...]]:
    rows = _read_rows(metadata)
    root = _audio_root(root, rows)
    columns, coerced = column_types(rows)
    mixed = [c for c in coerced if columns[c] != "list"]
    if mixed:
        logger.warning("%s: column(s) %s held cells of mixed types; each is stored as one type (%s), so that "
                       "readers such as Hugging Face datasets load the set", metadata, ", ".join(mixed),
                       ", ".join(f"{c}: {columns[c]}" for c in mixed))
    if len(mixed) < len(coerced):
        logger.info("%s: column(s) %s hold list literals; stored as lists of strings", metadata,
                    ", ".join(c for c in coerced if columns[c] == "list"))
    items: list[SourceItem] = []
    rejects: list[Reject] = []
    seen: set[str] = set()
    by_label = 0
    for rowno, row in enumerate(rows, start=1):
        got = _row_item(root, rowno, row, seen, follow, columns)
        if isinstance(got, Reject):
            rejects.append(got)
            continue
        items.append(got)
        by_label += got.rel != posixpath.normpath((row.get(FILENAME_COL) or "").strip().replace("\\", "/"))
    if not items and not rejects:
        raise MetadataError(f"{metadata}: the CSV has no data rows")
    if by_label:
        logger.warning("%s: %d rows name a file without its folder (BirdCLEF 2021 style); read from "
                       "<primary_label>/<filename> under %s", metadata, by_label, root)
    return items, rejects, columns, coerced


def _read_rows(metadata: Path) -> list[dict[str, Any]]:
    """The CSV's data rows (header → cell); :class:`MetadataError` without a filename column."""
    with io.StringIO(_read_csv_text(metadata), newline="") as fh:
        try:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            if FILENAME_COL not in header:
                raise MetadataError(
                    f"{metadata}: no '{FILENAME_COL}' column (found: {', '.join(header) or 'none'}); "
                    "the CSV needs a filename column relative to SRC, as in BirdCLEF's train_metadata.csv"
                )
            return list(reader)
        except csv.Error as exc:
            raise MetadataError(f"{metadata}: cannot parse CSV: {exc}") from exc


def _row_item(root: Path, rowno: int, row: dict[str, Any], seen: set[str], follow: bool,
              columns: dict[str, str]) -> SourceItem | Reject:
    """CSV data row ``rowno`` as a source, or the reason it is none (``seen``: the files of earlier rows)."""
    fname = (row.get(FILENAME_COL) or "").strip().replace("\\", "/")
    if not fname:
        return Reject("", rowno, "bad metadata: empty filename")
    rel = posixpath.normpath(fname)
    if rel.startswith("/") or rel == ".." or rel.startswith("../"):
        return Reject(fname, rowno, "outside SRC: the filename must name a file inside the source folder (no "
                                    "absolute paths, no '..')")
    primary = (row.get(PRIMARY_COL) or "").strip() or None
    if "/" not in rel and primary and _plain_name(primary) and not _is_file(root / rel) \
            and _is_file(root / primary / rel):
        rel = f"{primary}/{rel}"  # BirdCLEF 2021: train_short_audio/<primary_label>/<filename>
    if not follow and not _inside(root, root / rel):
        return Reject(fname, rowno, symlink_reason(root / rel, "file"))
    if rel in seen:
        return Reject(rel, rowno, "duplicate: the same filename is listed in an earlier row")
    seen.add(rel)
    path = root / rel
    if not _is_file(path):
        return Reject(rel, rowno, f"missing: listed in the CSV but not found under {root}")
    try:
        secondary = _parse_label_list(row.get(SECONDARY_COL))
    except ValueError as exc:
        return Reject(rel, rowno, f"bad metadata: {SECONDARY_COL} {exc}")
    if PRIMARY_COL not in row and path.parent != root:
        primary = path.parent.name
    extra = {k: cell_value(columns[k], v) for k, v in row.items() if k in columns}
    return SourceItem(str(path), rel, "", rowno, primary, tuple(secondary), extra)


def _plain_name(name: str) -> bool:
    """Whether ``name`` is one path component (no separator, not ``.``/``..``): a label used as a folder."""
    return "/" not in name and "\\" not in name and name not in (".", "..") and "\0" not in name


def _audio_root(root: Path, rows: list[dict[str, Any]]) -> Path:
    """``root/train_audio`` (``root/train_short_audio``, BirdCLEF 2021) when the CSV's filenames are found
    there and not under ``root``: BirdCLEF's filenames (``asbfly/XC134896.ogg``; in 2021 ``XC109605.ogg``
    under its ``primary_label`` folder) are relative to that folder, so SRC may be the competition folder as
    Kaggle mounts it. Decided once from the first rows, so every row resolves the same way."""
    names = []
    for r in rows[:50]:
        n = (r.get(FILENAME_COL) or "").strip().replace("\\", "/")
        if n and not n.startswith(("/", "..")) and ".." not in n.split("/"):
            names.append(n)
            label = (r.get(PRIMARY_COL) or "").strip()
            if "/" not in n and label and _plain_name(label):
                names.append(f"{label}/{n}")
    if any(_is_file(root / n) for n in names):
        return root
    for sub in (root / name for name in AUDIO_SUBFOLDERS):
        if sub.is_dir() and any(_is_file(sub / n) for n in names):
            logger.info("%s: the CSV's filenames are relative to %s/; reading them from there", root, sub.name)
            return sub
    return root


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False also for a name the system refuses (too long, a NUL byte)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _inside(root: Path, path: Path) -> bool:
    """Whether ``path`` resolves (symlinks followed) to a place inside ``root``."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a name too long, a NUL byte
        return False


def _parse_label_list(value: str | None) -> list[str]:
    text = (value or "").strip()
    if not text or text.lower() in ("nan", "none"):
        return []
    if len(text) > MAX_LABEL_CELL:
        raise ValueError(f"is {len(text)} characters long (at most {MAX_LABEL_CELL})")
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
        raise ValueError(f"{text!r} is not a Python list of strings like \"['barswa', 'grewar3']\"") from None
    if isinstance(parsed, (str, int)) and not isinstance(parsed, bool):
        parsed = [parsed]
    if not isinstance(parsed, (list, tuple)) or not all(
            isinstance(x, str) or (isinstance(x, int) and not isinstance(x, bool)) for x in parsed):
        raise ValueError(f"{text!r} is not a list of strings")
    # numbers are iNaturalist taxon ids (BirdCLEF 2025+ labels), written without quotes by some tools
    return [str(x).strip() for x in parsed if str(x).strip()]


_INT_RE = re.compile(r"^[+-]?\d+$")
#: cells that mean "no value" in a number column (BirdCLEF's ``rating`` holds a few "-")
MISSING_CELLS = frozenset({"-", "?", "na", "n/a", "nan", "null", "none"})


def column_types(rows: list[dict[str, Any]]) -> tuple[dict[str, str], tuple[str, ...]]:
    """One type per extra CSV column (every column but filename and the labels), in header order: ``"int"``
    when every cell with a value is a 64-bit integer, ``"float"`` when every one is a number, ``"list"`` when
    every one is a list literal of strings (BirdCLEF's ``type``: ``"['call', 'flight call']"``,
    :func:`list_cell`), else ``"str"`` (so one malformed list cell makes the column text, not an error);
    empty cells, and in number and list columns the cells of :data:`MISSING_CELLS`, are nil. Also the
    columns whose cells :func:`_typed` (each cell on its own, shardkit <= 0.x) would have given other values
    (mixed types, or lists): only their stored values change, so a set of clean columns keeps its bytes."""
    names = [k for k in (rows[0] if rows else {}) if k is not None and k not in (FILENAME_COL, PRIMARY_COL,
                                                                                  SECONDARY_COL)]
    types: dict[str, str] = {}
    coerced = []
    for name in names:
        cells = [row.get(name) for row in rows]
        numbers = [t for c in cells if (t := (c or "").strip()) and t.lower() not in MISSING_CELLS]
        if numbers and all(_INT_RE.match(t) and -(2**63) <= int(t) < 2**63 for t in numbers):
            types[name] = "int"
        elif numbers and all(_is_number(t) for t in numbers):
            types[name] = "float"
        elif numbers and all(list_cell(t) is not None for t in numbers):
            types[name] = "list"
        else:
            types[name] = "str"
        if any(_kind(_typed(c)) != _kind(cell_value(types[name], c)) for c in cells):
            coerced.append(name)
    return types, tuple(coerced)


def cell_value(kind: str, value: str | None) -> Any:
    """A CSV cell as a value of its column's ``kind`` (:func:`column_types`); nil when empty or missing."""
    text = (value or "").strip()
    if not text or (kind != "str" and text.lower() in MISSING_CELLS):
        return None
    if kind == "int":
        return int(text)
    if kind == "float":
        number = float(text)
        return None if number != number else number  # NaN → nil
    if kind == "list":
        return list(list_cell(text) or ())
    return value


@functools.lru_cache(maxsize=1024)  # a list column repeats a few cells ("['song']", "['call']") many times
def list_cell(text: str) -> tuple[str, ...] | None:
    """The strings of a list-literal cell (``"['call', 'flight call']"``, JSON's ``["call"]``, ``"[]"``), or
    None when ``text`` is not one: parsed as JSON, else by :func:`ast.literal_eval` (literals only, never
    evaluated as code), cells longer than :data:`MAX_LABEL_CELL` refused unread."""
    text = text.strip()
    if len(text) > MAX_LABEL_CELL or not (text.startswith("[") and text.endswith("]")):
        return None
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
            return None
    if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
        return None
    return tuple(parsed)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _kind(value: Any) -> tuple[type, Any]:
    return type(value), value


def _typed(value: str | None) -> Any:
    """CSV text → int, float, None (empty) or the string itself, each cell on its own (before one type per
    column; kept to tell which columns :func:`column_types` changes)."""
    if value is None:
        return None
    text = value.strip()
    if text == "":
        return None
    if _INT_RE.match(text):
        number = int(text)
        return number if -(2**63) <= number < 2**63 else value  # msgpack holds 64-bit integers
    try:
        f = float(text)
    except ValueError:
        return value
    return None if f != f else f  # NaN → None


_KEY_BAD = re.compile(r"[^A-Za-z0-9_\-/]")
_SUFFIX_LEN = len("-0000")


def _assign_stems(items: list[SourceItem]) -> list[SourceItem]:
    """Give each item a unique key stem derived from its path (format §2)."""
    def base(rel: str) -> str:
        stem = os.path.splitext(rel)[0]
        stem = _KEY_BAD.sub("_", stem)
        stem = "/".join(part or "_" for part in stem.split("/"))
        return stem

    def hashed(stem: str, rel: str) -> str:
        tag = hashlib.blake2b(rel.encode(), digest_size=4).hexdigest()
        keep = MAX_KEY_LEN - _SUFFIX_LEN - 9
        return f"{stem[:keep].rstrip('/')}-{tag}"

    stems = [base(it.rel) for it in items]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    out = []
    for it, stem in zip(items, stems):
        if counts[stem] > 1 or len(stem) + _SUFFIX_LEN > MAX_KEY_LEN:
            stem = hashed(stem, it.rel)
        out.append(SourceItem(it.path, it.rel, stem, it.row, it.primary_label, it.secondary_labels, it.extra))
    return out
