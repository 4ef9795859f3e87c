"""The one exception tree of shardkit.

Every error the library raises on purpose derives from :class:`ShardkitError`; each message says
what happened, names the file (and the sample, where there is one) and what to do about it::

    ShardkitError
    ├── UsageError(ValueError)          an argument or option is invalid (bad size string, ...)
    ├── SourceError                     a source folder or metadata CSV cannot be used at all
    │   └── MetadataError(ValueError)   the CSV lacks a required column or cannot be parsed
    ├── DecodeError                     one audio file cannot be decoded (a pack *reject*)
    ├── PackError                       packing cannot go on
    │   ├── OutputConflictError         OUT holds a different pack; pick another folder or --overwrite
    │   └── BudgetExceededError         --strict and the disk budget ran out
    ├── FormatError                     a shard set on disk is not what the format spec says
    │   ├── UnsupportedVersionError     written by a newer format version than this shardkit reads
    │   ├── UnknownCodecError(ValueError) a codec id this shardkit does not know
    │   ├── ManifestError               manifest.json is missing or malformed
    │   ├── ShardIndexError             a shard index is missing or malformed
    │   └── UnsafeFileError(OSError)    a file of the set is no regular file inside it (FIFO, device,
    │                                   symlink out of the set) or too large for what it is
    ├── IntegrityError                  a hash or size check failed (a corrupt shard)
    ├── SampleNotFoundError(KeyError)   no sample with that key in the shard set
    ├── ShardReadError(OSError)         reading a shard failed while streaming
    └── StorageError(OSError)           object storage cannot be used: unreachable endpoint, no such
                                        bucket, access denied (names the URL and what to check)

The CLI maps any ShardkitError to a one-line message and exit code :attr:`ShardkitError.exit_code`.
"""

from __future__ import annotations


class ShardkitError(Exception):
    """Base of every error shardkit raises on purpose."""

    exit_code: int = 1


class UsageError(ShardkitError, ValueError):
    """An argument or option is invalid; nothing was read or written."""

    exit_code = 2


class SourceError(ShardkitError):
    """The source folder or metadata file cannot be used at all."""


class MetadataError(SourceError, ValueError):
    """The metadata CSV lacks a required column or cannot be parsed."""


class DecodeError(ShardkitError):
    """One audio file cannot be decoded; pack records it as a reject and goes on (unless --strict)."""

    def __init__(self, file: str, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.file = file
        self.reason = reason


class PackError(ShardkitError):
    """Packing cannot go on."""


class OutputConflictError(PackError):
    """The output folder holds a pack made from other inputs or options."""


class BudgetExceededError(PackError):
    """The disk budget ran out and --strict asked to fail instead of stopping cleanly."""


class FormatError(ShardkitError):
    """A shard set on disk does not follow docs/format.md."""


class UnsupportedVersionError(FormatError):
    """The files were written by a format version this shardkit cannot read."""


class UnknownCodecError(FormatError, ValueError):
    """A codec id this shardkit does not know: a newer shardkit wrote the set (upgrade), or a typo."""


class ManifestError(FormatError):
    """manifest.json is missing or malformed."""


class ShardIndexError(FormatError):
    """A shard index file is missing or malformed."""


class UnsafeFileError(FormatError, OSError):
    """A file a shard set names is not a regular file inside the set (a FIFO, a device, a folder, a
    symlink that leads out of the set) or is larger than such a file may be; it was not read."""


class IntegrityError(ShardkitError):
    """A size, sha256 or crc32 check failed: the shard set is corrupt."""


class SampleNotFoundError(ShardkitError, KeyError):
    """No sample with the requested key exists in the shard set."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ShardReadError(ShardkitError, OSError):
    """Reading shard bytes failed while streaming (missing, truncated or unreadable shard)."""


class StorageError(ShardkitError, OSError):
    """Object storage cannot be used: the endpoint is unreachable, the bucket does not exist, the
    credentials are refused. The message names the URL and what to check."""


__all__ = [
    "BudgetExceededError",
    "DecodeError",
    "FormatError",
    "IntegrityError",
    "ManifestError",
    "MetadataError",
    "OutputConflictError",
    "PackError",
    "SampleNotFoundError",
    "ShardIndexError",
    "ShardReadError",
    "ShardkitError",
    "SourceError",
    "StorageError",
    "UnknownCodecError",
    "UnsafeFileError",
    "UnsupportedVersionError",
    "UsageError",
]
