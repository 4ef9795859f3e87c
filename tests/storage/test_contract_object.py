"""The storage contract on :class:`~shardkit.storage.object.ObjectStorage`: moto's S3 server, the HTTP range
server (both on loopback, started here), and each with the machine-wide shard cache (``cache_dir``).

Objects are put with boto3 or as files; the test process reads through obstore (the fork test runs in a
fresh process of its own)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from remote_fixtures import moto_endpoint, range_server, s3_client, url_of
from storage_contract import StorageContract
from test_contract_local import put_file

from shardkit.storage.cache import CachedStorage
from shardkit.storage.location import open_storage
from shardkit.storage.object import ObjectStorage

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    with moto_endpoint() as endpoint:
        s3_client(endpoint).create_bucket(Bucket="contract")
        yield endpoint


class TestObjectStorageS3(StorageContract):
    @pytest.fixture
    def where(self, s3: str, request: pytest.FixtureRequest) -> tuple[str, str]:
        return s3, f"{request.node.name}/"

    def put(self, where: tuple[str, str], name: str, data: bytes) -> None:
        endpoint, prefix = where
        s3_client(endpoint).put_object(Bucket="contract", Key=prefix + name, Body=data)

    def options(self, where: Any) -> dict[str, Any]:
        return {"endpoint": where[0], "access_key_id": "testing", "secret_access_key": "testing",
                "region": "us-east-1"}

    def open(self, where: tuple[str, str]) -> ObjectStorage:
        return ObjectStorage(f"s3://contract/{where[1]}", self.options(where))


class TestObjectStorageHTTP(StorageContract):
    @pytest.fixture
    def where(self, tmp_path: Path) -> Iterator[tuple[Path, str]]:
        server = range_server(tmp_path)
        try:
            yield tmp_path, url_of(server) + "/"
        finally:
            server.shutdown()

    def put(self, where: tuple[Path, str], name: str, data: bytes) -> None:
        put_file(where[0], name, data)

    def open(self, where: tuple[Path, str]) -> ObjectStorage:
        return ObjectStorage(where[1])


def _with_manifest(objects: dict[str, bytes]) -> dict[str, bytes]:
    """The objects and a manifest naming the shards with their sizes and sha256 (the disk cache's keys)."""
    shards = [{"name": n, "index": n + ".idx", "bytes": len(d), "sha256": hashlib.sha256(d).hexdigest()}
              for n, d in objects.items() if n.endswith(".tar")]
    return {**objects, **{s["index"]: b"index" for s in shards},
            "set.json": json.dumps({"shards": shards}).encode()}


class CachedContract:
    """The shard cache in front of an object store: opened like ShardSet.open does (the metadata first)."""

    OBJECTS: ClassVar[dict[str, bytes]] = _with_manifest(StorageContract.OBJECTS)

    @pytest.fixture(autouse=True)
    def _cache(self, tmp_path: Path) -> None:
        self.cache_dir = tmp_path / "cache"

    def cached(self, url: str, options: dict[str, Any]) -> Any:
        storage = open_storage(url, {**options, "cache_dir": str(self.cache_dir)})
        assert isinstance(storage, CachedStorage)
        storage.open_set("set.json")
        return storage


class TestCachedS3(CachedContract, TestObjectStorageS3):
    def open(self, where: tuple[str, str]) -> Any:
        return self.cached(f"s3://contract/{where[1]}", self.options(where))


class TestCachedHTTP(CachedContract, TestObjectStorageHTTP):
    def open(self, where: tuple[Path, str]) -> Any:
        return self.cached(where[1], {})
