"""shardkit: pack audio into tar shards once; stream int16 batches to the GPU without the CPU.

One subpackage per layer, lowest first; imports only point down (docs/architecture.md,
tests/test_layers.py): ``storage`` (byte ranges of named objects: folders, object stores) → ``encode``
(codecs: wav16, mel-u8; msgpack metadata) → ``format`` (the on-disk documents and their rules) →
``ingest`` (find, decode, resample, segment) → ``write`` (tar shards, indexes, ShardSetWriter, pack) →
``read`` (a shard set as checked columns, lineage, browsing; no torch) → ``dataset`` (ShardDataset:
order, split, batches) → ``device`` (mel and augmentations on the batch's device) → ``check`` (verify,
reindex) → ``versions`` (update, compact, history) → ``kaggle`` → ``demo``.

Every public name is importable from here (one flat ``__all__``); the device stage's modules from
:mod:`shardkit.device`. Heavy modules (torch) load on first use of the names that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shardkit._version import __version__
from shardkit.errors import (
    BudgetExceededError,
    DecodeError,
    FormatError,
    IntegrityError,
    ManifestError,
    MetadataError,
    OutputConflictError,
    PackError,
    SampleNotFoundError,
    ShardIndexError,
    ShardkitError,
    ShardReadError,
    SourceError,
    StorageError,
    UnknownCodecError,
    UnsafeFileError,
    UnsupportedVersionError,
    UsageError,
)
from shardkit.format import FORMAT_VERSION
from shardkit.read.lineage import register_hint
from shardkit.storage.location import register_scheme

# the Kaggle layer plugs into the reader by name, loaded only when a kaggle:// location is opened
register_scheme("kaggle", "shardkit.kaggle.notebook:resolve_location")
register_hint("kaggle", "shardkit.kaggle.notebook:missing_parent_hint")

_LAZY_MODULES = {
    "shardkit.write.pack": ("pack", "PackResult", "PackProgress"),
    "shardkit.write.options": ("PackOptions",),
    "shardkit.write.shardset_writer": ("ShardSetWriter",),
    "shardkit.read.shardset": ("ShardSet",),
    "shardkit.dataset.dataset": ("ShardDataset",),
    "shardkit.read.browse": ("info", "list_samples", "read_sample", "extract_sample",
                             "ShardSetInfo", "SampleEntry", "Sample"),
    "shardkit.dataset.plan": ("plan_split", "SplitPlan"),
    "shardkit.check.verify": ("verify", "VerifyReport", "Problem"),
    "shardkit.read.show": ("show_sample",),
    "shardkit.check.reindex": ("reindex", "ReindexResult"),
    "shardkit.versions.update": ("update", "UpdateResult"),
    "shardkit.versions.compact": ("compact", "CompactResult"),
    "shardkit.versions.lineage": ("log", "diff", "DiffReport"),
    "shardkit.format": ("Manifest", "ShardEntry", "ShardIndex"),
    "shardkit.encode": ("Codec", "Wav16", "MelU8", "MelConfig", "get_codec", "codec_ids"),
    "shardkit.device.frontend": ("LogMel",),
}
_LAZY = {name: module for module, names in _LAZY_MODULES.items() for name in names}
_ERRORS = [
    "BudgetExceededError", "DecodeError", "FormatError", "IntegrityError", "ManifestError", "MetadataError",
    "OutputConflictError", "PackError", "SampleNotFoundError", "ShardIndexError", "ShardReadError", "ShardkitError",
    "SourceError", "StorageError", "UnknownCodecError", "UnsafeFileError", "UnsupportedVersionError", "UsageError",
]

__all__ = sorted(["FORMAT_VERSION", "__version__", *_ERRORS, *_LAZY])

if TYPE_CHECKING:
    from shardkit.check.reindex import ReindexResult, reindex
    from shardkit.check.verify import Problem, VerifyReport, verify
    from shardkit.dataset.dataset import ShardDataset
    from shardkit.dataset.plan import SplitPlan, plan_split
    from shardkit.device.frontend import LogMel
    from shardkit.encode import Codec, MelConfig, MelU8, Wav16, codec_ids, get_codec
    from shardkit.format import Manifest, ShardEntry, ShardIndex
    from shardkit.read.browse import (
        Sample,
        SampleEntry,
        ShardSetInfo,
        extract_sample,
        info,
        list_samples,
        read_sample,
    )
    from shardkit.read.shardset import ShardSet
    from shardkit.read.show import show_sample
    from shardkit.versions.compact import CompactResult, compact
    from shardkit.versions.lineage import DiffReport, diff, log
    from shardkit.versions.update import UpdateResult, update
    from shardkit.write.options import PackOptions
    from shardkit.write.pack import PackProgress, PackResult, pack
    from shardkit.write.shardset_writer import ShardSetWriter


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shardkit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
