"""The ``s3`` result store (``[cache.s3]``): a bucket every instance reads and writes, so a
fleet renders each variant once."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from mediasrv import ByteRange, ConnectionLimiter, ContentRange, MediaError, NotFound, RangeNotSatisfiable
from mediasrv.cache import ResultKey, ResultStore, StoredResult, StoreError, StoreSettings, StoreStats
from mediasrv_s3.backend import S3Connection, create_client
from mediasrv_s3.errors import translate

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import GetObjectOutputTypeDef

T = TypeVar("T")

ETAG_META = "variant-etag"
DIGEST_META = "sha256"
META_PREFIX = "m-"  # the renderer's metadata, one S3 user-metadata key each


class S3StoreSettings(StoreSettings, S3Connection):
    """``[cache.s3]``: the S3 backend's connection keys (bucket, prefix, endpoint, credentials...)."""


class S3Store(ResultStore):
    """Each variant is one object, ``PREFIX/<source id>/<variant digest>``, written with its
    content type, and its derived ETag and sha256 as user metadata (checked on every whole
    read). A read asked for a range gets just that range from S3. One pooled client."""

    kind = "s3"
    Settings = S3StoreSettings
    settings: S3StoreSettings
    attempts = 1  # a failed store call is a miss, and the request renders: no retry delays it
    stats_pages = 10  # /admin/cache counts at most this many listing pages (1000 objects each)

    def __init__(self, settings: StoreSettings) -> None:
        super().__init__(settings)
        self._client: S3Client | None = None
        self._exit_stack = contextlib.AsyncExitStack()
        self._connections = ConnectionLimiter(
            self.settings.max_connections,
            self.settings.timeout,
            f"result store s3: all {self.settings.max_connections} S3 connections are busy",
        )

    async def start(self) -> None:
        client = create_client(self.settings, self.attempts, spare_connections=0)
        self._client = await self._exit_stack.enter_async_context(client)

    async def stop(self) -> None:
        await self._exit_stack.aclose()
        self._client = None

    async def get(self, key: ResultKey, byte_range: ByteRange | None = None) -> StoredResult | None:
        arguments: dict[str, Any] = {"Range": byte_range.header_value()} if byte_range is not None else {}
        try:
            async with self._connection():
                answer = await self._call(self.client.get_object(Bucket=self.bucket, Key=self._key(key), **arguments))
                body = await self._read(answer)
        except NotFound:
            return None
        return await self._checked(key, answer, body)

    async def put(self, key: ResultKey, result: StoredResult) -> None:
        metadata = {ETAG_META: result.etag, DIGEST_META: result.digest}
        metadata.update({META_PREFIX + name.lower(): value for name, value in result.metadata.items()})
        async with self._connection():
            await self._call(
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self._key(key),
                    Body=result.body,
                    ContentType=result.content_type,
                    Metadata=metadata,
                )
            )

    async def purge(self, source: str) -> int:
        removed = 0
        async for keys in self._listing(f"{self.settings.prefix}{source}/"):
            if keys:
                objects: Any = [{"Key": key} for key, _ in keys]
                await self._call(self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects}))
                removed += len(keys)
        return removed

    async def stats(self) -> StoreStats:
        entries = size = pages = 0
        truncated = False
        async for keys in self._listing(self.settings.prefix):
            entries += len(keys)
            size += sum(object_size for _, object_size in keys)
            pages += 1
            if pages >= self.stats_pages:
                truncated = True
                break
        details = {"bucket": self.bucket, "prefix": self.settings.prefix, "counted_all": not truncated}
        return StoreStats(entries, size, None, 0, details)

    @property
    def bucket(self) -> str:
        return self.settings.bucket

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise StoreError("the S3 result store is not started")
        return self._client

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[None]:
        """One of ``max_connections`` slots: botocore's pool would wait forever for one."""
        try:
            slot = await self._connections.acquire()
        except MediaError as exc:
            raise StoreError(exc.detail) from None
        try:
            yield
        finally:
            slot.release()

    def _key(self, key: ResultKey) -> str:
        return f"{self.settings.prefix}{key.source}/{key.name}"

    async def _listing(self, prefix: str) -> AsyncIterator[list[tuple[str, int]]]:
        """Pages of (key, size) under ``prefix``."""
        token: dict[str, Any] = {}
        while True:
            page = await self._call(self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, **token))
            yield [(item["Key"], item["Size"]) for item in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return
            token = {"ContinuationToken": page["NextContinuationToken"]}

    async def _read(self, answer: GetObjectOutputTypeDef) -> bytes:
        try:
            return await self._call(answer["Body"].read())
        finally:
            answer["Body"].close()

    async def _checked(self, key: ResultKey, answer: GetObjectOutputTypeDef, body: bytes) -> StoredResult:
        """The stored result, if its metadata and bytes agree; else the object is deleted."""
        metadata = answer.get("Metadata", {})
        content_range = _content_range(answer.get("ContentRange"))
        size = content_range.size if content_range is not None else len(body)
        whole = content_range is None or (content_range.first == 0 and content_range.last + 1 == size)
        intact = metadata.get(ETAG_META) == key.variant and size is not None and len(body) == answer["ContentLength"]
        if intact and whole:
            intact = hashlib.sha256(body).hexdigest() == metadata.get(DIGEST_META)
        if not intact or size is None:
            await self._call(self.client.delete_object(Bucket=self.bucket, Key=self._key(key)))
            where = f"s3://{self.bucket}/{self._key(key)}"
            raise StoreError(f"{where}: corrupt (metadata, length or digest wrong); removed")
        extra = {name[len(META_PREFIX) :]: value for name, value in metadata.items() if name.startswith(META_PREFIX)}
        content_type = answer.get("ContentType") or "application/octet-stream"
        return StoredResult(body, content_type, key.variant, size, extra, None if whole else content_range)

    async def _call(self, call: Awaitable[T]) -> T:
        """Await an S3 call; its failure is a StoreError, except a missing key (NotFound) and
        a range past the end (RangeNotSatisfiable, the client's 416)."""
        try:
            return await call
        except (NotFound, RangeNotSatisfiable, StoreError):
            raise
        except MediaError as exc:
            raise StoreError(exc.detail) from None
        except Exception as exc:
            error = translate(exc, "result store s3")
            if isinstance(error, NotFound | RangeNotSatisfiable):
                raise error from None
            raise StoreError(error.detail) from None


def _content_range(value: str | None) -> ContentRange | None:
    if not value:
        return None
    try:
        return ContentRange.parse(value)
    except ValueError:
        raise StoreError(f"S3 sent a malformed Content-Range {value!r}") from None
