"""Hugging Face ``datasets`` interop: the ``datasets.Features`` of a shard set's tar members.

``datasets.load_dataset("webdataset", data_files=TARS)`` guesses the columns' types from the first five
samples of the first shard, so a value that is nil there (no secondary labels, a ``"-"`` rating) and set
later fails the whole load. Passing ``features=hf_features(SET)`` gives every column its type from the
set: the metadata columns' types recorded by the pack (format §5.4, version 4), or, for a set packed
before, read from every sample's ``.mp`` member once.
"""

from __future__ import annotations

import os
from typing import Any

from shardkit.errors import UsageError

#: the keys of every ``.mp`` member (format §3.2) and their arrow types; ``extra`` is added per set
META_TYPES = {
    "key": "string", "source": "string", "row": "int64", "primary_label": "string", "sample_rate": "int64",
    "channels": "int64", "frames": "int64", "padded_frames": "int64", "start_frame": "int64",
    "start_seconds": "float64", "duration_seconds": "float64", "segment": "int64", "segments": "int64",
    "source_sample_rate": "int64", "source_channels": "int64", "source_frames": "int64", "source_format": "string",
}
#: keys a mel-u8 set's ``.mp`` members add (format §3.2)
MEL_META_TYPES = {"mel_frames": "int64", "q_lo": "float64", "q_hi": "float64"}
_ARROW = {"int": "int64", "float": "float64", "str": "string"}


def column_types_of(path: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None
                    ) -> dict[str, str]:
    """The type (``"int"``, ``"float"``, ``"str"``, ``"list"`` of strings) of each metadata column (``extra``)
    of the set at ``path``: as its version-4 manifest records them, else read from every sample's metadata
    (a column holding numbers and text is ``"str"``: such a set, packed before version 4, needs a re-pack
    for ``datasets``)."""
    return _describe(path, storage_options)[0]


def _describe(path: str | os.PathLike[str], storage_options: dict[str, Any] | None) -> tuple[dict[str, str], str, bool]:
    """(column types, the data member's extension, whether the set stores spectrograms)."""
    from shardkit.read.shardset import ShardSet

    with ShardSet.open(path, storage_options=storage_options) as ss:
        ext, mel = ss.codec.ext, ss.codec.mel is not None
        if ss.manifest.columns is not None:  # recorded by the pack (format §5.4)
            return dict(ss.manifest.columns), ext, mel
        seen: dict[str, set[type]] = {}
        for i in range(len(ss)):
            for name, value in (ss.read_meta(i).get("extra") or {}).items():
                seen.setdefault(name, set()).add(type(value))
    return {name: _kind(types - {type(None)}) for name, types in seen.items()}, ext, mel


def _kind(types: set[type]) -> str:
    if types and types <= {int}:
        return "int"
    if types and types <= {int, float}:
        return "float"
    if types == {list}:
        return "list"
    return "str"


def _feature(datasets: Any, kind: str) -> Any:
    """The ``datasets`` feature of a metadata column of ``kind`` (format §5.4): a list as a Sequence of strings."""
    return datasets.Sequence(datasets.Value("string")) if kind == "list" else datasets.Value(_ARROW[kind])


def hf_features(path: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None) -> Any:
    """``datasets.Features`` of the set at ``path`` for ``load_dataset("webdataset", data_files=TARS,
    features=...)``: ``__key__``, ``__url__``, the data member (``wav`` as bytes; a spectrogram set's
    ``npy`` as nested uint8 lists) and ``mp`` with every metadata key typed (``extra`` per
    :func:`column_types_of`; a ``"list"`` column as a ``Sequence`` of strings)."""
    try:
        import datasets
    except ImportError:
        raise UsageError("hf_features needs Hugging Face datasets: pip install datasets") from None
    columns, ext, mel = _describe(path, storage_options)
    meta: dict[str, Any] = {k: datasets.Value(v) for k, v in META_TYPES.items()}
    if mel:
        meta.update({k: datasets.Value(v) for k, v in MEL_META_TYPES.items()})
    meta["secondary_labels"] = datasets.List(datasets.Value("string"))
    meta["extra"] = {name: _feature(datasets, kind) for name, kind in sorted(columns.items())}
    data = datasets.List(datasets.List(datasets.Value("uint8"))) if mel else datasets.Value("binary")
    return datasets.Features({"__key__": datasets.Value("string"), "__url__": datasets.Value("string"),
                              ext: data, "mp": meta})
