"""Stage 6 — versions: the manifest, content hashes and version ids of a shard set."""

from shardkit.versions.manifest import build_manifest, version_id, write_manifest

__all__ = ["build_manifest", "version_id", "write_manifest"]
