"""The upstream HTTP backend: ``base_url + key`` fetched with one pooled aiohttp session."""

from __future__ import annotations

import contextlib
import logging

import aiohttp
from aiohttp import ClientResponse
from yarl import URL

import mediasrv
from mediasrv import (
    BackendSettings,
    ByteRange,
    ChunkReader,
    Conditions,
    ConnectionLimiter,
    ContentRange,
    Health,
    NotModified,
    ObjectInfo,
    ObjectStream,
    PreconditionFailed,
    RangeNotSatisfiable,
    StorageBackend,
    UpstreamError,
    entity_tag,
    format_http_date,
    is_header_safe,
    parse_http_date,
    parse_unsatisfied_range,
    serves,
)
from mediasrv_http.errors import DENIED_STATUSES, describe_failure, status_error, translate
from mediasrv_http.settings import HttpSettings
from mediasrv_http.urls import build_url, is_under, same_origin

logger = logging.getLogger("mediasrv.http")

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class HttpBackend(StorageBackend):
    """Streams ``base_url + key`` from an upstream HTTP server.

    One GET per object (HEAD for ``stat``), forwarding ``Range`` and the conditional headers;
    the answer's status and validators are carried over. Keys are percent-encoded segment by
    segment and can never leave ``base_url`` (see ``mediasrv_http.urls``); redirects are
    followed only within ``base_url``. At most ``max_connections`` requests are in flight:
    a request that finds them all taken waits ``pool_wait`` seconds at most, then gets 503.
    """

    kind = "http"
    Settings = HttpSettings
    settings: HttpSettings

    max_redirects = 3
    pool_wait_limit = 5.0  # seconds; the wait is min(timeout, this)

    def __init__(self, name: str, settings: BackendSettings) -> None:
        super().__init__(name, settings)
        self.base_url = self.settings.base
        self.health_url = self.settings.health_url
        self.pool_wait = min(self.settings.timeout, self.pool_wait_limit)
        self._session: aiohttp.ClientSession | None = None
        self._connections = ConnectionLimiter(
            self.settings.max_connections,
            self.pool_wait,
            f"backend {name!r}: all {self.settings.max_connections} upstream connections are busy",
        )

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """One session for the backend's lifetime. One connection beyond ``max_connections``
        is kept for ``health()``, so a busy pool does not make a working upstream look dead."""
        limit = self.settings.max_connections + 1
        connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit)
        headers = {name: value.get_secret_value() for name, value in self.settings.headers.items()}
        headers["Accept-Encoding"] = "identity"
        headers["User-Agent"] = f"mediasrv/{mediasrv.__version__}"
        timeout = self.settings.timeout
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=headers,
            # No total: it would cut long downloads. connect bounds DNS and connecting (the pool
            # wait is ours, in ConnectionLimiter); sock_read bounds waiting for the headers and each read.
            timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout, sock_read=timeout),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )

    async def stop(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # --- the StorageBackend interface ---------------------------------------------------------

    async def stat(self, key: str) -> ObjectInfo:
        url = build_url(self.base_url, key)
        slot = await self._connections.acquire()
        try:
            response = await self._fetch("HEAD", url, {})
            try:
                if response.status != 200:
                    raise status_error(response, self.name)
                return self._object_info(response, response.content_length)
            finally:
                response.release()
        finally:
            slot.release()

    async def open(self, key: str, byte_range: ByteRange | None, conditions: Conditions) -> ObjectStream:
        url = build_url(self.base_url, key)
        headers = _condition_headers(conditions)
        if byte_range is not None:
            headers["Range"] = byte_range.header_value()
        # What the stream holds (its pool slot, then the response) is released in reverse
        # order if anything fails before it is handed over, and by UpstreamChunks after.
        async with contextlib.AsyncExitStack() as held:
            held.callback((await self._connections.acquire()).release)
            response = await self._fetch("GET", url, headers)
            held.callback(response.close)
            stream = self._object_stream(response, byte_range, conditions, held)
        return stream

    async def health(self) -> Health:
        """HEAD of ``health_path`` (must answer below 400) or of ``base_url`` (below 400, or 404
        or 405: the host answers, the prefix itself is just not an object). Never follows a
        redirect; 401/403/429, 5xx, refusals and timeouts are unhealthy. Bounded by the
        session's connect and read timeouts, and by the core's [admin] health_timeout."""
        session = self.session
        target = f"HEAD {self.health_url.path}"
        try:
            async with session.head(self.health_url, allow_redirects=False) as response:
                status = response.status
        except TimeoutError:
            return Health(ok=False, error=f"{target}: no answer within {self.settings.timeout:g}s")
        except aiohttp.ClientError as exc:
            return Health(ok=False, error=f"{target}: {describe_failure(exc)}")
        if status < 400 or (not self.settings.health_path and status in (404, 405)):
            return Health(ok=True)
        if status in DENIED_STATUSES:
            return Health(ok=False, error=f"{target}: upstream answered {status} (check the credentials in headers)")
        return Health(ok=False, error=f"{target}: upstream answered {status}")

    # --- requests -----------------------------------------------------------------------------

    async def _fetch(self, method: str, url: URL, headers: dict[str, str]) -> ClientResponse:
        """The upstream's answer to ``method url``, following redirects that stay under
        ``base_url`` (up to ``max_redirects``). The caller releases the response."""
        for _ in range(self.max_redirects + 1):
            response = await self._send(method, url, headers)
            if response.status not in REDIRECT_STATUSES:
                return response
            location = response.headers.get("Location")
            response.release()
            url = self._redirect_target(url, location)
        raise UpstreamError(f"backend {self.name!r}: more than {self.max_redirects} redirects upstream")

    async def _send(self, method: str, url: URL, headers: dict[str, str]) -> ClientResponse:
        try:
            return await self.session.request(method, url, headers=headers, allow_redirects=False)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise translate(exc, self.name, f"{method} {url}") from None

    def _redirect_target(self, url: URL, location: str | None) -> URL:
        """Where a redirect leads, if it stays under ``base_url``; else UpstreamError (502)."""
        try:
            target = url.join(URL(location or ""))
        except (ValueError, TypeError):
            target = None
        if not location or target is None:
            raise UpstreamError(f"backend {self.name!r}: upstream redirected without a valid Location")
        if not same_origin(self.base_url, target):
            logger.warning("backend %r: redirect from %s to another origin refused", self.name, url)
            raise UpstreamError(f"backend {self.name!r}: upstream redirected to another origin")
        if not is_under(self.base_url, target):
            logger.warning("backend %r: redirect from %s to outside base_url refused", self.name, url)
            raise UpstreamError(f"backend {self.name!r}: upstream redirected outside base_url")
        return target

    @property
    def session(self) -> aiohttp.ClientSession:
        return self.started(self._session)

    # --- answers --------------------------------------------------------------------------------

    def _object_stream(
        self,
        response: ClientResponse,
        byte_range: ByteRange | None,
        conditions: Conditions,
        held: contextlib.AsyncExitStack,
    ) -> ObjectStream:
        """The stream for a GET's answer, taking over what ``held`` holds; raises the error its
        status means (and ``held`` releases)."""
        status = response.status
        if status == 200:
            info = self._object_info(response, response.content_length)
            return ObjectStream(info, self._chunks(response, held), None)  # a Range ignored: the core cuts
        if status == 206 and byte_range is not None:
            content_range = self._content_range(response, byte_range)
            info = self._object_info(response, content_range.size)
            return ObjectStream(info, self._chunks(response, held), content_range)
        if status == 304 and (conditions.if_none_match is not None or conditions.if_modified_since is not None):
            raise NotModified(self._object_info(response, None))
        if status == 412 and conditions.if_match is not None:
            raise PreconditionFailed("If-Match failed")
        if status == 412 and conditions.if_unmodified_since is not None:
            raise PreconditionFailed("If-Unmodified-Since failed")
        if status == 416 and byte_range is not None:
            raise RangeNotSatisfiable(parse_unsatisfied_range(response.headers.get("Content-Range")))
        raise status_error(response, self.name)

    def _chunks(self, response: ClientResponse, held: contextlib.AsyncExitStack) -> UpstreamChunks:
        return UpstreamChunks(response, self.settings.chunk_size, self.name, held.pop_all())

    def _content_range(self, response: ClientResponse, byte_range: ByteRange) -> ContentRange:
        """The range a 206 carries, if it is one valid range where the asked one starts."""
        try:
            content_range = ContentRange.parse(response.headers.get("Content-Range", ""))
        except ValueError:
            raise UpstreamError(f"backend {self.name!r}: upstream sent a 206 without a valid Content-Range") from None
        length = response.content_length
        if length is not None and length != content_range.length:
            raise UpstreamError(f"backend {self.name!r}: upstream's Content-Length and Content-Range disagree")
        if not serves(byte_range, content_range):
            raise UpstreamError(f"backend {self.name!r}: upstream sent another range than the one asked")
        return content_range

    def _object_info(self, response: ClientResponse, size: int | None) -> ObjectInfo:
        """Metadata from the upstream's headers; nothing else of them is passed on
        (hop-by-hop headers, cookies, Server, Vary and the like are dropped)."""
        headers = response.headers
        encoding = headers.get("Content-Encoding", "").strip()
        return ObjectInfo(
            size=size,
            content_type=headers.get("Content-Type") or None,
            etag=entity_tag(headers.get("ETag")),
            last_modified=parse_http_date(headers.get("Last-Modified")),
            content_encoding=encoding if encoding and encoding.lower() != "identity" else None,
            cache_control=headers.get("Cache-Control") or None,
        )


class UpstreamChunks(ChunkReader):
    """The body of an upstream response, ``chunk_size`` bytes at most per read.

    A library error mid-body becomes UpstreamError/UpstreamTimeout and propagates, so the
    core aborts the client's connection. ``release`` gives a fully read connection back to
    the pool (a partly read one is closed: it would carry the rest of this body), then
    ``held`` closes the response and frees the pool slot.
    """

    def __init__(
        self, response: ClientResponse, chunk_size: int, backend: str, held: contextlib.AsyncExitStack
    ) -> None:
        self._response = response
        self._chunk_size = chunk_size
        self._backend = backend
        self._held = held

    async def read(self) -> bytes:
        try:
            chunk = await self._response.content.read(self._chunk_size)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise translate(exc, self._backend, f"reading the body of {self._response.url}") from None
        if not chunk:
            self._response.release()  # read to the end: the connection can be reused
        return chunk

    async def release(self) -> None:
        await self._held.aclose()


def _condition_headers(conditions: Conditions) -> dict[str, str]:
    """The request's conditional headers, forwarded as sent (dates re-rendered in HTTP form)."""
    headers: dict[str, str] = {}
    for name, raw in (
        ("If-Match", conditions.if_match),
        ("If-None-Match", conditions.if_none_match),
        ("If-Range", conditions.if_range),
    ):
        if raw is not None and is_header_safe(raw):
            headers[name] = raw
    for name, moment in (
        ("If-Modified-Since", conditions.if_modified_since),
        ("If-Unmodified-Since", conditions.if_unmodified_since),
    ):
        date = format_http_date(moment) if moment is not None else None
        if date is not None:
            headers[name] = date
    return headers
