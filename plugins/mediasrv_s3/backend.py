"""The S3 backend: one aiobotocore client per backend, one GET per request."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Self, TypeVar

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator

from mediasrv import (
    BackendSettings,
    ByteRange,
    ChunkReader,
    Conditions,
    ConnectionLimiter,
    ContentRange,
    Health,
    InvalidKey,
    MediaError,
    ObjectInfo,
    ObjectStream,
    Slot,
    StorageBackend,
    UpstreamError,
    is_strong_entity_tag,
)
from mediasrv_s3.errors import translate
from mediasrv_s3.parts import ObjectChanged, PartBody, PartStream, plan_parts

if TYPE_CHECKING:
    from aiobotocore.session import ClientCreatorContext
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import GetObjectOutputTypeDef, HeadObjectOutputTypeDef

T = TypeVar("T")

# S3's placeholder for "no type given at upload": guess from the key instead.
UNTYPED = frozenset({"binary/octet-stream", ""})
MIB = 1024 * 1024


class S3Connection(BaseModel):
    """Where a bucket is and how to reach it: the keys the S3 backend and the S3 result store share."""

    bucket: str = Field(min_length=1, pattern=r"^[^/\s]+$")
    prefix: str = Field(default="", description="folder inside the bucket; keys are read under it")
    endpoint_url: str = Field(default="", description="empty: AWS", pattern=r"^(https?://\S+)?$")
    region: str = "us-east-1"
    access_key_id: SecretStr = SecretStr("")
    secret_access_key: SecretStr = SecretStr("")
    verify_tls: bool = True
    max_connections: int = Field(
        default=64,
        ge=1,
        le=10_000,
        validation_alias=AliasChoices("max_connections", "max_pool_connections"),
        description="connections to S3 per worker (max_pool_connections: its former name)",
    )
    timeout: float = Field(default=10.0, gt=0, le=3600, description="connect and per-read, seconds")

    @property
    def max_pool_connections(self) -> int:
        """The former name of ``max_connections``."""
        return self.max_connections

    @field_validator("prefix")
    @classmethod
    def _folder(cls, prefix: str) -> str:
        """``photos``, ``/photos/`` and ``photos/`` all mean the folder ``photos/``."""
        prefix = prefix.strip("/")
        if ".." in prefix.split("/"):
            raise ValueError("must not contain '..' segments")
        return f"{prefix}/" if prefix else ""

    @model_validator(mode="after")
    def _both_keys_or_neither(self) -> Self:
        if bool(self.access_key_id.get_secret_value()) != bool(self.secret_access_key.get_secret_value()):
            raise ValueError("set both access_key_id and secret_access_key, or neither (the AWS credential chain)")
        return self


class S3Settings(S3Connection, BackendSettings):
    """``[backends.NAME]`` with ``kind = "s3"``."""

    parallel_threshold: int = Field(
        default=16 * MIB, ge=0, description="bytes to send above which they are fetched in parallel parts"
    )
    part_size: int = Field(default=4 * MIB, ge=1024, le=5 * 1024 * MIB, description="bytes per ranged GET")
    parallel_parts: int = Field(default=8, ge=1, le=64, description="connections per stream; 1: one GET per request")


def create_client(settings: S3Connection, attempts: int, spare_connections: int = 1) -> ClientCreatorContext[S3Client]:
    """The one pooled aiobotocore client of a backend or store (enter it to open the pool)."""
    config = AioConfig(
        max_pool_connections=settings.max_connections + spare_connections,
        connect_timeout=settings.timeout,
        read_timeout=settings.timeout,
        retries={"mode": "standard", "total_max_attempts": attempts},
        # botocore would CRC32 every whole-object body as it streams (about a tenth of the
        # CPU of a large stream, make bench) and compare on the final empty read: after the
        # client has had every byte, so a mismatch could change nothing it receives.
        response_checksum_validation="when_required",
    )
    return get_session().create_client(
        "s3",
        endpoint_url=settings.endpoint_url or None,
        region_name=settings.region or None,
        aws_access_key_id=settings.access_key_id.get_secret_value() or None,
        aws_secret_access_key=settings.secret_access_key.get_secret_value() or None,
        verify=settings.verify_tls,
        config=config,
    )


class S3Backend(StorageBackend):
    """Serves the objects of ``bucket`` under ``prefix``.

    One client (and its connection pool) per backend, made in ``start``. Each open stream
    holds one of ``max_connections`` slots until its body is released; a request that
    finds none free within ``timeout`` gets 503 instead of waiting forever in botocore's
    pool. The pool has one more connection than slots, kept for health checks.
    """

    kind = "s3"
    Settings = S3Settings
    settings: S3Settings
    attempts = 2  # one retry for a dropped connection or a 5xx, no more: a client is waiting
    # The first part of a stream in parallel parts is a probe: the others start once it is
    # read, in parallel only if that pays (mediasrv_s3.parts.parallel_pays). A subclass for a
    # source known to cap each connection may set this False to start them at once.
    probe_first_part = True

    def __init__(self, name: str, settings: BackendSettings) -> None:
        super().__init__(name, settings)
        self._client: S3Client | None = None
        self._exit_stack = contextlib.AsyncExitStack()
        self._connections = ConnectionLimiter(
            self.settings.max_connections,
            self.settings.timeout,
            f"backend {name!r}: all {self.settings.max_connections} S3 connections are busy",
        )

    async def start(self) -> None:
        self._client = await self._exit_stack.enter_async_context(create_client(self.settings, self.attempts))

    async def stop(self) -> None:
        await self._exit_stack.aclose()
        self._client = None

    async def stat(self, key: str) -> ObjectInfo:
        slot = await self._connections.acquire()
        try:
            answer = await self._call(self.client.head_object(Bucket=self.settings.bucket, Key=self._object_key(key)))
        finally:
            slot.release()
        return _object_info(answer, None)

    async def open(self, key: str, byte_range: ByteRange | None, conditions: Conditions) -> ObjectStream:
        """One GET for the whole answer, as S3 sends it; an answer over ``parallel_threshold``
        bytes is read in parallel parts after its first part, if that pays (DESIGN.md "Large
        objects from S3", mediasrv_s3.parts)."""
        range_header = None if byte_range is None else byte_range.header_value()
        started = time.perf_counter()
        slot, answer = await self._get(key, range_header, _conditional_arguments(conditions))
        first_byte = time.perf_counter() - started
        content_range = _content_range(answer.get("ContentRange"), self.name)
        info = _object_info(answer, content_range)
        length = content_range.length if content_range is not None else info.size
        settings = self.settings
        # Parts need the size and an ETag to hold them to, and pay only above the threshold.
        if (
            settings.parallel_parts == 1
            or not info.etag
            or info.size is None
            or length is None
            or length <= settings.parallel_threshold
        ):
            return ObjectStream(info, self._chunks(slot, answer), content_range)
        first = content_range.first if content_range is not None else 0
        stream = PartStream(
            plan_parts(first, length, settings.part_size),
            answer["Body"],
            slot,
            self._connections,
            functools.partial(self._open_part, self._object_key(key), info.etag, info.size),
            window=settings.parallel_parts,
            part_size=settings.part_size,
            read_size=min(settings.chunk_size, settings.part_size),
            first_byte_seconds=first_byte if self.probe_first_part else None,
        )
        await stream.start()
        return ObjectStream(info, stream, content_range)

    async def _open_part(self, s3_key: str, etag: str, size: int, first: int, last: int) -> PartBody:
        """The bytes first..last of the version whose ETag is ``etag`` (412 once it changed)."""
        answer = await self._call(
            self.client.get_object(Bucket=self.settings.bucket, Key=s3_key, Range=f"bytes={first}-{last}", IfMatch=etag)
        )
        body = answer["Body"]
        if answer.get("ETag") != etag or answer.get("ContentRange") != f"bytes {first}-{last}/{size}":
            body.close()
            raise ObjectChanged(f"backend {self.name!r}: the object changed while it was streamed")
        return body

    async def _get(
        self, key: str, range_header: str | None, arguments: dict[str, Any]
    ) -> tuple[Slot, GetObjectOutputTypeDef]:
        """One ``get_object`` holding a connection slot, which the caller then owns."""
        if range_header is not None:
            arguments["Range"] = range_header
        slot = await self._connections.acquire()
        try:
            answer = await self._call(
                self.client.get_object(Bucket=self.settings.bucket, Key=self._object_key(key), **arguments)
            )
        except BaseException:
            slot.release()
            raise
        return slot, answer

    def _chunks(self, slot: Slot, answer: GetObjectOutputTypeDef) -> S3Chunks:
        held = contextlib.AsyncExitStack()
        held.callback(slot.release)
        held.callback(answer["Body"].close)
        return S3Chunks(answer, self.settings.chunk_size, held)

    async def health(self) -> Health:
        # Bounded by the core's [admin] health_timeout, and by botocore's own timeouts.
        try:
            await self._call(self.client.head_bucket(Bucket=self.settings.bucket))
        except MediaError as exc:
            if exc.status == 404:  # head_bucket's only 404 is a missing bucket
                return Health(ok=False, error="the bucket does not exist")
            return Health(ok=False, error=exc.detail)
        return Health(ok=True)

    @property
    def client(self) -> S3Client:
        return self.started(self._client)

    def _object_key(self, key: str) -> str:
        """The S3 key of ``key``; nothing can address an object outside the prefix."""
        if key.startswith("/") or ".." in key.split("/"):
            raise InvalidKey("key leaves the backend's prefix")
        return self.settings.prefix + key

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except MediaError:
            raise
        except Exception as exc:
            raise translate(exc, self.name) from None


class S3Chunks(ChunkReader):
    """The body of one ``get_object``, read ``chunk_size`` at a time.

    That is what ``iter_chunks(chunk_size)`` does; ``async for`` over the body would read
    1 KiB at a time. Releasing closes the body, which frees its connection, then the
    backend's pool slot.
    """

    def __init__(self, answer: GetObjectOutputTypeDef, chunk_size: int, held: contextlib.AsyncExitStack) -> None:
        self.body = answer["Body"]
        self.chunk_size = chunk_size
        self.held = held

    async def read(self) -> bytes:
        # Errors propagate as they are: the core aborts the client's connection mid-body.
        return await self.body.read(self.chunk_size)

    async def release(self) -> None:
        await self.held.aclose()


def _conditional_arguments(conditions: Conditions) -> dict[str, Any]:
    """The conditions S3 can evaluate as RFC 9110 does, as get_object arguments, so that a 304
    or 412 moves no body. The core evaluates all of them again on the answer.

    Left to the core: an If-Match other than one strong ETag (S3 compares the text, so ``*``
    or a list would fail wrongly), If-Modified-Since beside If-None-Match (S3 answers 304 when
    the date alone holds; RFC 9110 ignores the date), If-Unmodified-Since beside If-Match, and
    If-Range (no S3 parameter).
    """
    arguments: dict[str, Any] = {}
    if conditions.if_match is not None and is_strong_entity_tag(conditions.if_match.strip()):
        arguments["IfMatch"] = conditions.if_match.strip()
    if conditions.if_none_match is not None:
        arguments["IfNoneMatch"] = conditions.if_none_match
    elif conditions.if_modified_since is not None:
        arguments["IfModifiedSince"] = conditions.if_modified_since
    if conditions.if_unmodified_since is not None and conditions.if_match is None:
        arguments["IfUnmodifiedSince"] = conditions.if_unmodified_since
    return arguments


def _object_info(
    answer: GetObjectOutputTypeDef | HeadObjectOutputTypeDef, content_range: ContentRange | None
) -> ObjectInfo:
    content_type = answer.get("ContentType")
    return ObjectInfo(
        # A ranged GET's ContentLength is the range's; the object's size is in its Content-Range.
        size=content_range.size if content_range is not None else answer.get("ContentLength"),
        content_type=None if content_type in UNTYPED else content_type,
        etag=answer.get("ETag"),
        last_modified=answer.get("LastModified"),
        content_encoding=answer.get("ContentEncoding"),
        cache_control=answer.get("CacheControl"),
    )


def _content_range(value: str | None, backend: str) -> ContentRange | None:
    if not value:
        return None
    try:
        return ContentRange.parse(value)
    except ValueError:
        raise UpstreamError(f"backend {backend!r}: S3 sent a malformed Content-Range") from None
