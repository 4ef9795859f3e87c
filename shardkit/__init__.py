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

#: the exception tree, as imported above
_ERRORS = [name for name, value in list(globals().items())
           if isinstance(value, type) and issubclass(value, ShardkitError)]

# What users call, imported on first use. This block is the one list of those names: type checkers read it,
# and _lazy_names() reads it for __getattr__ and __all__ (tests/unit/test_public_api.py holds the contract).
# Extension and format types live in their packages: shardkit.encode (Codec, Wav16, MelU8, get_codec,
# codec_ids), shardkit.format (Manifest, ShardEntry, ShardIndex), shardkit.device (LogMel and the modules).
if TYPE_CHECKING:
    from shardkit.check.reindex import ReindexResult, reindex
    from shardkit.check.verify import VerifyProblem, VerifyReport, verify
    from shardkit.dataset.dataset import ShardDataset
    from shardkit.dataset.dryrun import SplitPlan, plan_split
    from shardkit.dataset.mixture import Mixture
    from shardkit.device.pipeline import AugmentConfig, DevicePipeline
    from shardkit.encode.mel_config import MelConfig
    from shardkit.read.browse import Sample, SampleEntry, ShardSetInfo, extract_sample, info, list_samples, read_sample
    from shardkit.read.columns import sample_columns
    from shardkit.read.folds import Fold, folds, load_folds, write_folds
    from shardkit.read.shardset import ShardSet
    from shardkit.read.show import show_sample
    from shardkit.versions.compact import CompactResult, compact
    from shardkit.versions.layers import LabelsResult, add_labels, list_labels, remove_labels
    from shardkit.versions.lineage import DiffReport, diff, history
    from shardkit.versions.update import UpdateResult, update
    from shardkit.write.options import PackOptions
    from shardkit.write.pack import PackProgress, PackResult, pack
    from shardkit.write.shardset_writer import ShardSetWriter


def _lazy_names() -> dict[str, str]:
    """name → module of every name of the ``TYPE_CHECKING`` block above (read from this file's source)."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
    return {alias.name: str(node.module) for node in block.body if isinstance(node, ast.ImportFrom)
            for alias in node.names}


_LAZY = _lazy_names()
__all__ = sorted(["FORMAT_VERSION", "__version__", *_ERRORS, *_LAZY])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shardkit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
