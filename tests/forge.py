"""Forging shard sets for the hostile-input tests: change a manifest, an index or a shard's bytes and
update every hash and size that covers it, as an attacker (or a careless tool) would."""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shardkit.format import ShardIndex


def edit_manifest(root: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads((root / "manifest.json").read_text())
    edit(doc)
    (root / "manifest.json").write_text(json.dumps(doc, indent=1, sort_keys=True))


def _rehash_entry(root: Path, number: int) -> None:
    def edit(doc: dict[str, Any]) -> None:
        e = doc["shards"][number]
        for name, size_key, sha_key in ((e["name"], "bytes", "sha256"), (e["index"], "index_bytes", "index_sha256")):
            data = (root / name).read_bytes()
            e[size_key], e[sha_key] = len(data), hashlib.sha256(data).hexdigest()
        doc["totals"]["bytes"] = sum(s["bytes"] + s["index_bytes"] for s in doc["shards"])  # format §5: covers them
    edit_manifest(root, edit)


def edit_index(root: Path, number: int, edit: Callable[[ShardIndex], None], name: str | None = None) -> None:
    """Change the index of manifest entry ``number``, then its size and sha256 in the manifest."""
    path = root / (name or f"shard-{number:05d}.index")
    idx = ShardIndex.load(path)
    edit(idx)
    path.write_bytes(idx.to_bytes())
    _rehash_entry(root, number)


def edit_shard(root: Path, number: int, edit: Callable[[bytearray], None]) -> None:
    """Change shard ``number``'s bytes, then its size and sha256 in its index and in the manifest."""
    path = root / f"shard-{number:05d}.tar"
    data = bytearray(path.read_bytes())
    edit(data)
    path.write_bytes(bytes(data))

    def fix(idx: ShardIndex) -> None:
        idx.shard_bytes, idx.shard_sha256 = len(data), hashlib.sha256(data).hexdigest()
    edit_index(root, number, fix)


def set_header(data: bytearray, header_offset: int, *, name: str | None = None, typeflag: bytes | None = None,
               linkname: str = "") -> None:
    """Rewrite one ustar header in place (name, typeflag, link name) with a valid checksum."""
    block = data[header_offset:header_offset + 512]
    info = tarfile.TarInfo.frombuf(bytes(block), "utf-8", "strict")
    if name is not None:
        info.name = name
    if typeflag is not None:
        info.type = typeflag
        info.linkname = linkname
    data[header_offset:header_offset + 512] = info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8")
