"""botocore's exceptions, translated to mediasrv's errors with client-safe details.

A detail names the backend and what went wrong, never botocore's text: that carries request
ids, and for some errors the access key id.
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from mediasrv import (
    BackendUnavailable,
    InvalidKey,
    MediaError,
    NotFound,
    NotModified,
    ObjectInfo,
    PreconditionFailed,
    RangeNotSatisfiable,
    UpstreamError,
    UpstreamTimeout,
    parse_http_date,
)

NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# Our configuration or credentials are wrong: the client can do nothing about it.
DENIED_CODES = {
    "NoSuchBucket": "the bucket does not exist",
    "AccessDenied": "access denied",
    "403": "access denied",
    "AllAccessDisabled": "access denied",
    "InvalidAccessKeyId": "the access key id is not known to S3",
    "SignatureDoesNotMatch": "the secret access key is wrong",
    "ExpiredToken": "the credentials have expired",
    "InvalidToken": "the credentials are invalid",
    "AuthorizationHeaderMalformed": "the region or credentials are wrong",
    "PermanentRedirect": "the bucket is in another region",
    "301": "the bucket is in another region",
}
THROTTLED_CODES = frozenset({"SlowDown", "503", "RequestLimitExceeded", "TooManyRequests"})


def translate(exc: Exception, backend: str) -> MediaError:
    """The mediasrv error for an exception raised by an S3 call of ``backend``."""
    if isinstance(exc, ClientError):
        return _client_error(exc, backend)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return BackendUnavailable(f"backend {backend!r}: no usable AWS credentials")
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError | TimeoutError):
        return UpstreamTimeout(f"backend {backend!r}: S3 did not answer in time")
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError):
        return UpstreamError(f"backend {backend!r}: could not connect to S3")
    if isinstance(exc, BotoCoreError):
        return UpstreamError(f"backend {backend!r}: S3 request failed ({type(exc).__name__})")
    return UpstreamError(f"backend {backend!r}: S3 request failed")


def _client_error(exc: ClientError, backend: str) -> MediaError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    if code in NOT_FOUND_CODES:
        return NotFound()
    if code == "InvalidRange":
        size = error.get("ActualObjectSize")
        return RangeNotSatisfiable(int(size) if isinstance(size, str) and size.isdigit() else None)
    if code in ("304", "NotModified"):
        return NotModified(_validators(exc))
    if code in ("412", "PreconditionFailed"):
        return PreconditionFailed()
    if code == "KeyTooLongError":
        return InvalidKey("key too long")
    if code in DENIED_CODES:
        return BackendUnavailable(f"backend {backend!r}: {DENIED_CODES[code]}")
    if code in THROTTLED_CODES:
        return BackendUnavailable(f"backend {backend!r}: S3 is throttling requests", retry_after=1)
    return UpstreamError(f"backend {backend!r}: S3 answered {_status(exc)} {code}".rstrip())


def _status(exc: ClientError) -> int | str:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "an error")


def _validators(exc: ClientError) -> ObjectInfo:
    """The validators and Cache-Control of a 304, which a 304 must repeat."""
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return ObjectInfo(
        etag=headers.get("etag"),
        last_modified=parse_http_date(headers.get("last-modified")),
        cache_control=headers.get("cache-control"),
    )
