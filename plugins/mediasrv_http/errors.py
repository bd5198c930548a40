"""aiohttp's exceptions and an upstream's unexpected statuses, translated to mediasrv's errors
with client-safe details: a detail names the backend and what went wrong, never a header,
a body or a URL's query."""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import ClientResponse

from mediasrv import BackendUnavailable, MediaError, NotFound, UpstreamError, UpstreamTimeout

logger = logging.getLogger("mediasrv.http")

DENIED_STATUSES = frozenset({401, 403, 407, 429})  # our credentials or quota, not the client's fault
GONE_STATUSES = frozenset({404, 410})
MAX_RETRY_AFTER = 3600  # an upstream's own Retry-After (429) is passed on up to this


def translate(exc: BaseException, backend: str, request: str) -> MediaError:
    """The mediasrv error for a library exception during ``request`` (say ``GET url``) of
    ``backend``: a timeout is 504, anything else 502. Logged, as the client learns little."""
    logger.warning("backend %r: %s failed: %s", backend, request, describe_failure(exc))
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"backend {backend!r}: upstream timed out")
    return UpstreamError(f"backend {backend!r}: {describe_failure(exc)}")


def status_error(response: ClientResponse, backend: str) -> MediaError:
    """The error an unexpected status means: 404/410 not found; 401/403/407/429 are ours
    to fix (503); anything else, including a 3xx not followed and a 5xx, is 502."""
    status = response.status
    if status in GONE_STATUSES:
        return NotFound()
    if status in DENIED_STATUSES:
        logger.warning("backend %r: upstream answered %d to %s", backend, status, response.url.path)
        retry_after = _retry_after(response.headers.get("Retry-After"), MAX_RETRY_AFTER)
        return BackendUnavailable(
            f"backend {backend!r} is unavailable: upstream answered {status}",
            retry_after=retry_after if status == 429 else None,
        )
    if status >= 500:
        logger.warning("backend %r: upstream answered %d to %s", backend, status, response.url.path)
    return UpstreamError(f"backend {backend!r}: upstream answered {status}")


def describe_failure(exc: BaseException) -> str:
    """A short, secret-free description of a library failure (no headers, no bodies)."""
    if isinstance(exc, TimeoutError):
        return "upstream timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "cannot connect to upstream"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "upstream body incomplete"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "upstream closed the connection"
    if isinstance(exc, aiohttp.ClientConnectionError):
        return "upstream connection failed"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "invalid response from upstream"
    return "upstream request failed"


def _retry_after(value: str | None, cap: int) -> int | None:
    """A Retry-After in seconds (only the delay form), capped; None when absent or a date."""
    if value is None or not value.strip().isdigit() or len(value.strip()) > 9:
        return None
    return min(int(value.strip()), cap)
