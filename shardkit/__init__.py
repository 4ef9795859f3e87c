"""shardkit: pack audio into tar shards once; stream int16 batches to the GPU without the CPU.

The pipeline, one subpackage per stage: ``ingest`` (find, decode, resample, segment) → ``encode``
(wav16/msgpack members) → ``write`` (tar shards, indexes, pack) → ``read`` (shard set, order,
split, ShardDataset) → ``device`` (mel on the batch's device) → ``versions`` (manifest, hashes).

Heavy modules (torch) load on first use of the names that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shardkit._version import __version__
from shardkit.errors import ShardkitError
from shardkit.format import FORMAT_VERSION

_LAZY = {
    "pack": "shardkit.write.pack",
    "PackOptions": "shardkit.write.options",
    "PackResult": "shardkit.write.pack",
    "PackProgress": "shardkit.write.pack",
    "ShardSetWriter": "shardkit.write.shardset_writer",
    "ShardSet": "shardkit.read.shardset",
    "ShardDataset": "shardkit.read.dataset",
    "MelConfig": "shardkit.encode.mel_config",
    "LogMel": "shardkit.device.frontend",
    "info": "shardkit.read.inspect",
    "list_samples": "shardkit.read.inspect",
    "read_sample": "shardkit.read.inspect",
    "plan_split": "shardkit.read.inspect",
    "verify": "shardkit.versions.verify",
}

__all__ = ["FORMAT_VERSION", "ShardkitError", "__version__", *sorted(_LAZY)]

if TYPE_CHECKING:
    from shardkit.device.frontend import LogMel
    from shardkit.encode.mel_config import MelConfig
    from shardkit.read.dataset import ShardDataset
    from shardkit.read.inspect import info, list_samples, plan_split, read_sample
    from shardkit.read.shardset import ShardSet
    from shardkit.versions.verify import verify
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
