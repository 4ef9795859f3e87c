"""The checks a reader makes on a shard set's indexes before it reads a byte, shared by the reader
(:meth:`ShardSet.open <shardkit.read.shardset.ShardSet.open>` raises the first) and ``verify`` (which
reports them all, naming file and sample): docs/format.md §6.

Each check returns :class:`Finding` values instead of raising, so that both use one definition.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shardkit import format as fmt
from shardkit.encode.base import Codec
from shardkit.encode.registry import get_codec
from shardkit.errors import FormatError, IntegrityError, ManifestError, ShardIndexError, ShardkitError
from shardkit.format.manifest import is_plain_name

#: rows named per kind of finding (then one line counts the rest)
MAX_NAMED = 20
#: what fixes a finding: the index is rebuilt from its shard, or the shard set is fetched/made again
REINDEX, REFETCH = "reindex", "refetch"
#: a derived set's ancestor shards are not found where it looks
PARENT = "parent"
_KEYS_RE = re.compile(r"(?:[A-Za-z0-9_\-]+(?:/[A-Za-z0-9_\-]+)*\n)*")  # fmt.KEY_RE, one key per line
_INT_COLUMNS = ("wav_offset", "wav_size", "meta_offset", "meta_size", "frames", "label", "start",
                "wav_crc32", "meta_crc32")


@dataclass(frozen=True)
class Finding:
    """One thing a reader refuses: the object (``file``, a name in the set), the sample key where
    there is one, what is wrong, the error a reader raises for it, and what fixes it."""

    file: str
    key: str | None
    what: str
    error: type[ShardkitError] = ShardIndexError
    fix: str = REINDEX


def advice(fix: str, root: Any) -> str:
    """The sentence that says what works for a finding of kind ``fix`` in the set at ``root``."""
    if fix == REINDEX:
        return f"rebuild the index from its shard with 'shardkit reindex {root}' (or re-download the shard set)"
    if fix == PARENT:
        return (f"put the parent set next to {root} or pass the folder holding it: 'shardkit verify {root} "
                "--search-path FOLDER' (env SHARDKIT_SEARCH_PATH)")
    return f"re-download or re-pack the shard set, then run 'shardkit verify {root}'"


def raise_first(findings: Sequence[Finding], describe: Callable[[str], str], root: Any) -> None:
    """Raise the first finding as its error (the reader's way), with the advice that fixes it."""
    if findings:
        f = findings[0]
        where = describe(f.file) if is_plain_name(f.file) else f"{root}{' (' + f.file + ')' if f.file else ''}"
        sample = f": sample {f.key!r}" if f.key else ""
        raise f.error(f"{where}{sample}: {f.what}; {advice(f.fix, root)}")


def index_findings(index: fmt.ShardIndex, entry: fmt.ShardEntry, vocab: list[str], codec: Codec) -> list[Finding]:
    """The index belongs to this manifest entry: shard name, vocabulary, codec and sample count, and its
    columns hold values of the right types."""
    out, name = [], entry.index
    if index.shard != entry.name:
        out.append(Finding(name, None, f"index is for shard {index.shard!r}, the manifest lists it for {entry.name!r}"))
    if index.vocabulary != vocab:
        out.append(Finding(name, None, "index vocabulary differs from the manifest's (the shard set mixes files "
                                       "of different packs)"))
    try:
        same = get_codec(index.codec) == codec
    except FormatError as exc:
        out.append(Finding(name, None, str(exc)))
    else:
        if not same:
            out.append(Finding(name, None, f"index codec {index.codec} does not match the manifest's audio "
                                           f"{codec.audio_doc()}"))
    if entry.samples != len(index):
        out.append(Finding(name, None, f"index lists {len(index)} samples, the manifest says {entry.samples} "
                                       f"for {entry.name}", IntegrityError))
    return out + _column_findings(index, name) + key_findings(index, name)


def key_findings(index: fmt.ShardIndex, name: str) -> list[Finding]:
    """Every key follows the key grammar (format §2: :data:`~shardkit.format.KEY_RE`, at most
    :data:`~shardkit.format.MAX_KEY_LEN` characters): no ``..``, no absolute path, no dot."""
    keys = index.columns["key"]
    if all(isinstance(k, str) for k in keys):
        joined = "\n".join(keys) + "\n" if keys else ""
        if joined.count("\n") == len(keys) and _KEYS_RE.fullmatch(joined) and max(map(len, keys), default=0) <= \
                fmt.MAX_KEY_LEN:
            return []  # one pass in C for the usual case
    rows = np.asarray([i for i, k in enumerate(keys) if not isinstance(k, str) or len(k) > fmt.MAX_KEY_LEN
                       or not fmt.KEY_RE.fullmatch(k)], dtype=np.int64)
    return _name_rows(name, [str(k) for k in keys], rows, f"key breaks the key grammar ({fmt.KEY_RE.pattern}, "
                      f"at most {fmt.MAX_KEY_LEN} characters)")


def _column_findings(index: fmt.ShardIndex, name: str) -> list[Finding]:
    c = index.columns
    bad = [col for col in _INT_COLUMNS if not _int_list(c[col], (0, 2**32 - 1) if col.endswith("crc32") else None)]
    if not all(isinstance(k, str) for k in c["key"]) or not all(isinstance(s, str) for s in c["source"]):
        bad.append("key/source")
    try:
        np.fromiter((int(j) for s in c["secondary"] for j in _ints(s)), dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        bad.append("secondary")
    return [Finding(name, None, f"index column {col!r} holds values that are not of its type") for col in bad]


def _int_list(values: Any, bounds: tuple[int, int] | None = None) -> bool:
    """Whether ``values`` is a flat list of integers (not ragged, not nested, no floats or strings)
    that fit int64, or lie within ``bounds`` (inclusive) when given."""
    if not isinstance(values, list):
        return False
    if not values:
        return True
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError, OverflowError):  # ragged, or past any integer dtype
        return False
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        return False
    lo, hi = bounds or (-(2**63), 2**63 - 1)
    return int(arr.min()) >= lo and int(arr.max()) <= hi


def _ints(values: Any) -> list[int]:
    if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise TypeError("not a list of integers")
    return values


def int_column(index: fmt.ShardIndex, name: str) -> np.ndarray:
    """Index column ``name`` as int64 (checked by :func:`index_findings` first)."""
    return np.asarray(index.columns[name], dtype=np.int64).reshape(-1)


def extent_findings(index: fmt.ShardIndex, shard: str, size: int, codec: Codec) -> list[Finding]:
    """Every member lies inside the shard of ``size`` bytes, and each data member's size fits its frames
    as the codec says (:meth:`Codec.member_fits`: a frame codec's header + frames × frame bytes)."""
    if not len(index):
        return []
    wav_off, wav_size = int_column(index, "wav_offset"), int_column(index, "wav_size")
    meta_off, meta_size = int_column(index, "meta_offset"), int_column(index, "meta_size")
    frames = int_column(index, "frames")
    checks = [
        (~codec.member_fits(wav_size, frames), f"data member size does not fit the codec ({codec.size_rule})"),
        ((wav_off < fmt.TAR_BLOCK) | (meta_off < fmt.TAR_BLOCK) | (wav_size < 0) | (meta_size < 0) | (frames < 0),
         "index holds a negative or impossible offset, size or frame count"),
        ((wav_off + wav_size > size) | (meta_off + meta_size > size),
         f"index points past the end of the shard ({size} bytes)"),
    ]
    keys = index.columns["key"]
    return [f for bad, what in checks for f in _name_rows(shard, keys, np.flatnonzero(bad),
                                                           what)]


def _name_rows(file: str, keys: Sequence[str], rows: np.ndarray, what: str,
               error: type[ShardkitError] = ShardIndexError, fix: str = REINDEX) -> list[Finding]:
    out = [Finding(file, str(keys[r]), what, error, fix) for r in rows[:MAX_NAMED]]
    if len(rows) > MAX_NAMED:
        out.append(Finding(file, None, f"... and {len(rows) - MAX_NAMED} more samples: {what}", error, fix))
    return out


def set_findings(indexes: Sequence[fmt.ShardIndex], names: Sequence[str], n_labels: int) -> list[Finding]:
    """Across the set (``names``: each index's file name): labels inside the vocabulary of ``n_labels``
    labels, and sample keys unique."""
    out = []
    for index, name in zip(indexes, names, strict=True):
        label, sec = int_column(index, "label"), index.columns["secondary"]
        lengths = np.fromiter((len(s) for s in sec), dtype=np.int64, count=len(sec))
        flat = np.fromiter((j for s in sec for j in s), dtype=np.int64, count=int(lengths.sum()))
        sec_rows = np.repeat(np.arange(len(sec)), lengths)[(flat < 0) | (flat >= n_labels)]
        bad = np.union1d(np.flatnonzero((label < -1) | (label >= n_labels)), sec_rows).astype(np.int64)
        out += _name_rows(name, index.columns["key"], bad, f"a label outside the vocabulary ({n_labels} labels)")
    keys = [k for index in indexes for k in index.columns["key"]]
    if len(set(keys)) == len(keys):
        return out
    seen = Counter(keys)
    dup = [k for k, n in seen.items() if n > 1]
    for k in dup[:MAX_NAMED]:
        files = [n for ix, n in zip(indexes, names, strict=True) if k in ix.columns["key"]]
        out.append(Finding(", ".join(files), k, f"sample key appears {seen[k]} times in the shard set (keys must "
                           "be unique)", ShardIndexError, REFETCH))
    if len(dup) > MAX_NAMED:
        out.append(Finding("", None, f"... and {len(dup) - MAX_NAMED} more duplicated keys", ShardIndexError,
                           REFETCH))
    return out


def counted_totals(manifest: fmt.Manifest, indexes: Sequence[fmt.ShardIndex] | None = None) -> dict[str, int | float]:
    """The ``totals`` (format §5, §5.1) that the shard entries give: ``samples`` a reader yields (less
    tombstones), ``bytes`` (every listed shard and index, the ancestors' included), and their ``frames``,
    ``seconds`` and ``hours``: counted in ``indexes`` (overrides applied) when given, else in the entries
    of a set without overrides (left out otherwise: a tombstone's frames are only in its index)."""
    out: dict[str, int | float] = {"samples": manifest.samples,
                                   "bytes": sum(e.bytes + e.index_bytes for e in manifest.shards)}
    if indexes is not None:
        out["samples"] = sum(len(ix) for ix in indexes)
        frames = sum(int(int_column(ix, "frames").sum()) for ix in indexes)
    elif not manifest.overrides:
        frames = sum(e.frames for e in manifest.shards)
    else:
        return out
    seconds = round(frames * manifest.codec.seconds_per_frame, 6)
    out.update(frames=frames, seconds=seconds, hours=round(seconds / 3600, 6))
    return out


def totals_findings(manifest: fmt.Manifest, indexes: Sequence[fmt.ShardIndex] | None = None) -> list[Finding]:
    """Each of the manifest's ``totals`` that :func:`counted_totals` counts and that disagrees with the
    count (seconds and hours to 1e-6, as a writer rounds them); a total left out is not checked."""
    out = []
    for key, counted in counted_totals(manifest, indexes).items():
        if key not in manifest.totals:
            continue
        stated = manifest.totals[key]
        number = isinstance(stated, (int, float)) and not isinstance(stated, bool)
        if not number or (stated != counted if isinstance(counted, int)
                          else not math.isclose(stated, counted, rel_tol=1e-9, abs_tol=1e-6)):
            out.append(Finding(fmt.MANIFEST_NAME, None, f"totals.{key} is {stated!r}, but the "
                               f"{len(manifest.shards)} shard entries hold {counted}", ManifestError, REFETCH))
    return out
