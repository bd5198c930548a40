"""mediasrv.testing's conformance suite run against every built-in backend, each on a real
source: a temporary folder, moto's S3 server, an aiohttp upstream serving a folder; and
against the memory test plugin."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from conftest import TEST_PLUGINS_DIR
from mediasrv import StorageBackend
from mediasrv.testing import BackendConformance, SampleObject, started
from mediasrv_http import HttpBackend, HttpSettings
from mediasrv_local import LocalBackend, LocalSettings
from mediasrv_s3 import S3Backend, S3Settings
from s3_server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, MotoServer
from upstreams import Upstream, UpstreamLoop, files_app

POOL = 2  # below BackendConformance.release_rounds, so a leaked connection shows


def write_files(root: Path, objects: dict[str, SampleObject]) -> None:
    for key, sample in objects.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(sample.data)


class TestLocalConformance(BackendConformance):
    invalid_keys = (*BackendConformance.invalid_keys, "conformance/link-out/secret.txt")

    @pytest_asyncio.fixture
    async def backend(self, objects: dict[str, SampleObject], tmp_path: Path) -> AsyncIterator[StorageBackend]:
        root = tmp_path / "root"
        write_files(root, objects)
        (tmp_path / "outside").mkdir()
        (tmp_path / "outside" / "secret.txt").write_text("outside the root")
        (root / "conformance" / "link-out").symlink_to(tmp_path / "outside")
        settings = LocalSettings(kind="local", root=root, chunk_size=self.chunk_size)
        self.root = root
        async with started(LocalBackend("conformance", settings)) as backend:
            yield backend

    async def break_object(self, backend: StorageBackend, key: str) -> bool:
        os.truncate(self.root / key, 100)
        return True


class TestS3Conformance(BackendConformance):
    @pytest_asyncio.fixture
    async def backend(self, objects: dict[str, SampleObject], moto: MotoServer) -> AsyncIterator[StorageBackend]:
        bucket = f"conformance-{uuid.uuid4().hex[:12]}"
        s3 = moto.client()
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="outside.txt", Body=b"outside the prefix")
        for key, sample in objects.items():
            s3.put_object(Bucket=bucket, Key=f"served/{key}", Body=sample.data, ContentType=sample.content_type or "")
        settings = S3Settings(
            kind="s3",
            bucket=bucket,
            prefix="served",
            endpoint_url=moto.endpoint_url,
            region=REGION,
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=SECRET_ACCESS_KEY,
            max_pool_connections=POOL,
            timeout=5,
            chunk_size=self.chunk_size,
        )
        async with started(S3Backend("conformance", settings)) as backend:
            yield backend


@pytest.fixture(scope="module")
def upstream_loop() -> Iterator[UpstreamLoop]:
    loop = UpstreamLoop()
    yield loop
    loop.close()


class TestHttpConformance(BackendConformance):
    invalid_keys = (*BackendConformance.invalid_keys, "http:/127.0.0.1/x", "conformance/..%2f..%2foutside.txt")

    @pytest_asyncio.fixture
    async def backend(
        self, objects: dict[str, SampleObject], tmp_path: Path, upstream_loop: UpstreamLoop
    ) -> AsyncIterator[StorageBackend]:
        write_files(tmp_path / "files", objects)
        (tmp_path / "outside.txt").write_text("outside base_url")
        # The suite's cancelled opens and stop() leave requests behind: the upstream finishes them.
        upstream: Upstream = upstream_loop.serve(files_app(tmp_path / "files"), handler_cancellation=False)
        settings = HttpSettings(
            kind="http",
            base_url=f"{upstream.origin}/files/",
            health_path="/health",
            max_connections=POOL,
            timeout=5,
            chunk_size=self.chunk_size,
        )
        async with started(HttpBackend("conformance", settings)) as backend:
            yield backend


class TestMemoryConformance(BackendConformance):
    """The test plugin the core's own tests lean on keeps the contract too."""

    @pytest_asyncio.fixture
    async def backend(
        self, objects: dict[str, SampleObject], monkeypatch: pytest.MonkeyPatch
    ) -> AsyncIterator[StorageBackend]:
        monkeypatch.syspath_prepend(str(TEST_PLUGINS_DIR))
        from memory_backend import MemoryBackend, MemorySettings

        settings = MemorySettings(kind="memory", chunk_size=self.chunk_size)
        instance = MemoryBackend("conformance", settings)
        instance.data = {key: sample.data for key, sample in objects.items()}
        async with started(instance) as backend:
            yield backend
