"""The s3 result store against a real S3 server (moto): shared objects with the derived ETag
and content type, ranged reads, checked whole reads, purge, and outages as StoreError."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from conftest import free_port
from mediasrv import ByteRange, ContentRange, RangeNotSatisfiable
from mediasrv.cache import ResultKey, StoredResult, StoreError
from mediasrv_s3 import S3Store, S3StoreSettings
from s3_server import MotoServer, result_store_table

BODY = os.urandom(50_000)


def store_settings(endpoint_url: str, bucket: str, **extra: object) -> S3StoreSettings:
    return S3StoreSettings.model_validate(result_store_table(endpoint_url, bucket, **extra))


@pytest_asyncio.fixture
async def store(moto: MotoServer, request: pytest.FixtureRequest) -> AsyncIterator[S3Store]:
    bucket = f"cache-{request.node.name.replace('_', '-')[:40].lower()}".rstrip("-")
    moto.client().create_bucket(Bucket=bucket)
    store = S3Store(store_settings(moto.endpoint_url, bucket))
    await store.start()
    yield store
    await store.stop()


def key(variant: str = '"v1"', name: str = "a.jpg") -> ResultKey:
    return ResultKey.of("photos", name, variant)


def result(body: bytes = BODY, etag: str = '"v1"') -> StoredResult:
    return StoredResult.whole(body, "image/avif", etag, {"format": "avif", "width": "640"})


@pytest.mark.asyncio
async def test_s3_store_gives_back_what_was_put(store: S3Store, moto: MotoServer) -> None:
    await store.put(key(), result())
    found = await store.get(key())
    assert found is not None
    assert (found.body, found.content_type, found.etag, found.size) == (BODY, "image/avif", '"v1"', len(BODY))
    assert found.metadata == {"format": "avif", "width": "640"}
    head = moto.client().head_object(Bucket=store.bucket, Key=f"variants/{key().source}/{key().name}")
    assert head["ContentType"] == "image/avif"
    assert head["Metadata"]["variant-etag"] == '"v1"'
    assert await store.get(key('"v2"')) is None


@pytest.mark.asyncio
async def test_s3_store_reads_just_the_range_asked(store: S3Store) -> None:
    await store.put(key(), result())
    found = await store.get(key(), ByteRange(1000, 1999))
    assert found is not None
    assert found.body == BODY[1000:2000]
    assert found.content_range == ContentRange(1000, 1999, len(BODY))
    assert found.size == len(BODY)
    with pytest.raises(RangeNotSatisfiable):
        await store.get(key(), ByteRange(len(BODY) + 10))


@pytest.mark.asyncio
async def test_s3_store_drops_an_object_whose_bytes_do_not_match(store: S3Store, moto: MotoServer) -> None:
    await store.put(key(), result())
    object_key = f"variants/{key().source}/{key().name}"
    s3 = moto.client()
    metadata = s3.head_object(Bucket=store.bucket, Key=object_key)["Metadata"]
    s3.put_object(Bucket=store.bucket, Key=object_key, Body=BODY[:-1] + b"!", Metadata=metadata)
    with pytest.raises(StoreError, match="corrupt"):
        await store.get(key())
    assert await store.get(key()) is None


@pytest.mark.asyncio
async def test_s3_store_purge_and_stats(store: S3Store) -> None:
    for variant in ('"a"', '"b"', '"c"'):
        await store.put(key(variant), result(b"x" * 100, variant))
    await store.put(key('"a"', "other.jpg"), result(b"y" * 10, '"a"'))
    stats = await store.stats()
    assert (stats.entries, stats.bytes) == (4, 310)
    assert await store.purge(key().source) == 3
    assert await store.get(key('"b"')) is None
    assert await store.get(key('"a"', "other.jpg")) is not None
    assert (await store.stats()).entries == 1


@pytest.mark.asyncio
async def test_s3_store_missing_bucket_is_a_store_error(moto: MotoServer) -> None:
    store = S3Store(store_settings(moto.endpoint_url, "no-such-cache-bucket"))
    await store.start()
    try:
        with pytest.raises(StoreError, match="the bucket does not exist"):
            await store.put(key(), result())
        with pytest.raises(StoreError, match="the bucket does not exist"):
            await store.get(key())
    finally:
        await store.stop()


@pytest.mark.asyncio
async def test_s3_store_down_is_a_store_error() -> None:
    store = S3Store(store_settings(f"http://127.0.0.1:{free_port()}", "cache", timeout=0.5))
    await store.start()
    try:
        with pytest.raises(StoreError, match="could not connect to S3"):
            await store.get(key())
    finally:
        await store.stop()
