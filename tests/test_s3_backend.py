"""The S3 backend's own contract, called in-process against a real S3 server (moto's):
health, pooled connections, chunking, outages. Over-the-socket behaviour is in test_media_s3."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiobotocore.httpchecksum import AioStreamingChecksumBody
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, NoCredentialsError
from pydantic import ValidationError

from conftest import free_port
from mediasrv import (
    BackendUnavailable,
    ByteRange,
    Conditions,
    InvalidKey,
    NotFound,
    NotModified,
    PreconditionFailed,
    RangeNotSatisfiable,
    UpstreamError,
    UpstreamTimeout,
)
from mediasrv_s3 import S3Backend, S3Settings
from mediasrv_s3.backend import S3Chunks
from mediasrv_s3.errors import translate
from s3_server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, MotoServer

BUCKET = "backend-contract"
SIZE = 3 * 1024 * 1024
DATA = os.urandom(SIZE)


def settings(endpoint_url: str, **extra: object) -> S3Settings:
    values: dict[str, object] = {
        "kind": "s3",
        "bucket": BUCKET,
        "endpoint_url": endpoint_url,
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
        "timeout": 2,
        **extra,
    }
    return S3Settings.model_validate(values)


@pytest.fixture(scope="module")
def bucket(moto: MotoServer) -> Iterator[str]:
    s3 = moto.client()
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="data.bin", Body=DATA)
    yield BUCKET


@pytest_asyncio.fixture
async def backend(moto: MotoServer, bucket: str) -> AsyncIterator[S3Backend]:
    backend = S3Backend("contract", settings(moto.endpoint_url, max_pool_connections=1, timeout=0.5))
    await backend.start()
    yield backend
    await backend.stop()


@pytest.mark.asyncio
async def test_health_ok_for_a_reachable_bucket(backend: S3Backend) -> None:
    health = await backend.health()
    assert health.ok, health.error


@pytest.mark.asyncio
async def test_health_reports_a_missing_bucket(moto: MotoServer) -> None:
    backend = S3Backend("nobucket", settings(moto.endpoint_url, bucket="no-such-bucket"))
    await backend.start()
    try:
        health = await backend.health()
    finally:
        await backend.stop()
    assert not health.ok
    assert health.error == "the bucket does not exist"


@pytest.mark.asyncio
async def test_health_false_when_the_server_is_stopped_and_true_when_back(tmp_path: Path) -> None:
    moto = MotoServer(free_port(), str(tmp_path / "moto.log"))
    moto.start()
    moto.client().create_bucket(Bucket=BUCKET)
    backend = S3Backend("outage", settings(moto.endpoint_url))
    await backend.start()
    try:
        assert (await backend.health()).ok
        moto.stop()
        health = await backend.health()
        assert not health.ok
        assert health.error is not None and "could not connect" in health.error
        moto.start()
        moto.client().create_bucket(Bucket=BUCKET)
        assert (await backend.health()).ok
    finally:
        await backend.stop()
        moto.stop()


@pytest.mark.asyncio
async def test_chunks_are_large_not_the_1_kib_default(backend: S3Backend) -> None:
    stream = await backend.open("data.bin", None, Conditions())
    sizes = [len(chunk) async for chunk in stream.chunks]
    assert sum(sizes) == SIZE
    assert SIZE / len(sizes) >= 64 * 1024


@pytest.mark.asyncio
async def test_whole_object_bodies_are_not_checksummed_as_they_stream(backend: S3Backend) -> None:
    # The object has a CRC32 (boto3 sends one on upload); checking it would only cost CPU.
    stream = await backend.open("data.bin", None, Conditions())
    try:
        assert isinstance(stream.chunks, S3Chunks)
        assert not isinstance(stream.chunks.body, AioStreamingChecksumBody)
    finally:
        await stream.chunks.aclose()


@pytest.mark.asyncio
async def test_open_reports_size_of_the_object_for_a_range(backend: S3Backend) -> None:
    stream = await backend.open("data.bin", ByteRange(first=10, last=19), Conditions())
    chunks = [chunk async for chunk in stream.chunks]
    assert b"".join(chunks) == DATA[10:20]
    assert stream.info.size == SIZE
    assert stream.content_range is not None
    assert (stream.content_range.first, stream.content_range.last, stream.content_range.size) == (10, 19, SIZE)


@pytest.mark.asyncio
async def test_stat_matches_open(backend: S3Backend) -> None:
    info = await backend.stat("data.bin")
    stream = await backend.open("data.bin", None, Conditions())
    await stream.chunks.aclose()
    assert info == stream.info
    assert info.size == SIZE and info.etag and info.last_modified is not None


@pytest.mark.asyncio
async def test_an_abandoned_stream_frees_its_pool_slot(backend: S3Backend) -> None:
    for _ in range(3):  # one slot: a leak would make the second open wait and fail
        stream = await backend.open("data.bin", None, Conditions())
        assert await anext(stream.chunks)
        await stream.chunks.aclose()


@pytest.mark.asyncio
async def test_a_held_stream_makes_the_next_open_503_after_the_timeout(backend: S3Backend) -> None:
    held = await backend.open("data.bin", None, Conditions())
    try:
        with pytest.raises(BackendUnavailable) as raised:
            await backend.open("data.bin", None, Conditions())
        assert raised.value.retry_after == 1
    finally:
        await held.chunks.aclose()
    assert (await backend.stat("data.bin")).size == SIZE


@pytest.mark.asyncio
async def test_failed_open_frees_its_slot(backend: S3Backend) -> None:
    for _ in range(3):
        with pytest.raises(NotFound):
            await backend.open("missing", None, Conditions())
    assert (await backend.stat("data.bin")).size == SIZE


@pytest.mark.asyncio
async def test_key_with_dot_dot_is_refused_before_any_request(backend: S3Backend) -> None:
    for key in ("../x", "a/../../x", "/x"):
        with pytest.raises(InvalidKey):
            await backend.open(key, None, Conditions())


@pytest.mark.asyncio
async def test_no_credentials_anywhere_is_503(moto: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    backend = S3Backend("anonymous", settings(moto.endpoint_url, access_key_id="", secret_access_key=""))
    await backend.start()
    try:
        with pytest.raises(BackendUnavailable, match="no usable AWS credentials"):
            await backend.stat("data.bin")
    finally:
        await backend.stop()


@pytest.mark.asyncio
async def test_credentials_from_the_environment_chain(
    moto: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    backend = S3Backend("chain", settings(moto.endpoint_url, access_key_id="", secret_access_key=""))
    await backend.start()
    try:
        assert (await backend.stat("data.bin")).size == SIZE
    finally:
        await backend.stop()


# Settings


def test_prefix_is_normalised_to_a_folder() -> None:
    for prefix in ("photos", "/photos/", "photos/"):
        assert settings("", prefix=prefix).prefix == "photos/"
    assert settings("", prefix="").prefix == ""
    assert settings("", prefix="a/b").prefix == "a/b/"


@pytest.mark.parametrize(
    "extra",
    [
        {"prefix": "a/../b"},
        {"bucket": ""},
        {"bucket": "a/b"},
        {"endpoint_url": "127.0.0.1:9000"},
        {"endpoint_url": "ftp://127.0.0.1"},
        {"access_key_id": "", "secret_access_key": "x"},
        {"access_key_id": "x", "secret_access_key": ""},
        {"max_pool_connections": 0},
        {"timeout": 0},
        {"unknown": 1},
    ],
)
def test_invalid_settings_are_refused(extra: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        settings(**{"endpoint_url": "http://127.0.0.1:9000", **extra})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["max_connections", "max_pool_connections"])
def test_connection_cap_has_the_http_backends_name_and_keeps_its_old_one(name: str) -> None:
    model = settings("http://127.0.0.1:9000", **{name: 7})  # type: ignore[arg-type]
    assert model.max_connections == 7
    assert model.model_dump()["max_connections"] == 7
    with pytest.raises(ValidationError):
        settings("http://127.0.0.1:9000", **{name: 0})  # type: ignore[arg-type]


def test_secrets_are_hidden_in_repr_and_errors() -> None:
    model = settings("http://127.0.0.1:9000")
    assert SECRET_ACCESS_KEY not in repr(model)
    assert ACCESS_KEY_ID not in repr(model)
    with pytest.raises(ValidationError) as raised:
        settings("http://127.0.0.1:9000", secret_access_key=SECRET_ACCESS_KEY, max_pool_connections=0)
    assert SECRET_ACCESS_KEY not in str(raised.value)


# Error translation, for the answers a local S3 server does not give on cue


def client_error(code: str, status: int, **error: str) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": f"raw message with request id ABC123 and {ACCESS_KEY_ID}", **error},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {"etag": '"e"'}},
    }
    return ClientError(response, "GetObject")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "expected", "status"),
    [
        (client_error("NoSuchKey", 404), NotFound, 404),
        (client_error("404", 404), NotFound, 404),
        (client_error("InvalidRange", 416, ActualObjectSize="10"), RangeNotSatisfiable, 416),
        (client_error("304", 304), NotModified, 304),
        (client_error("PreconditionFailed", 412), PreconditionFailed, 412),
        (client_error("NoSuchBucket", 404), BackendUnavailable, 503),
        (client_error("AccessDenied", 403), BackendUnavailable, 503),
        (client_error("403", 403), BackendUnavailable, 503),
        (client_error("InvalidAccessKeyId", 403), BackendUnavailable, 503),
        (client_error("SignatureDoesNotMatch", 403), BackendUnavailable, 503),
        (client_error("ExpiredToken", 400), BackendUnavailable, 503),
        (client_error("PermanentRedirect", 301), BackendUnavailable, 503),
        (client_error("SlowDown", 503), BackendUnavailable, 503),
        (client_error("InternalError", 500), UpstreamError, 502),
        (client_error("InvalidArgument", 400), UpstreamError, 502),
        (client_error("KeyTooLongError", 400), InvalidKey, 400),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), UpstreamError, 502),
        (ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), UpstreamTimeout, 504),
        (TimeoutError(), UpstreamTimeout, 504),
        (NoCredentialsError(), BackendUnavailable, 503),
        (RuntimeError("library bug"), UpstreamError, 502),
    ],
)
def test_errors_translate_to_their_status_without_raw_text(exc: Exception, expected: type, status: int) -> None:
    error = translate(exc, "photos")
    assert isinstance(error, expected)
    assert error.status == status
    assert "ABC123" not in error.detail
    assert ACCESS_KEY_ID not in error.detail


def test_invalid_range_carries_the_object_size() -> None:
    error = translate(client_error("InvalidRange", 416, ActualObjectSize="10"), "photos")
    assert isinstance(error, RangeNotSatisfiable)
    assert error.size == 10


def test_not_modified_keeps_the_etag() -> None:
    error = translate(client_error("304", 304), "photos")
    assert isinstance(error, NotModified)
    assert error.info is not None and error.info.etag == '"e"'
