"""The errors a backend raises; each has one HTTP status (``status``), and one place turns them
into responses (``mediasrv.responses.error_response``).

They subclass builtins where one fits, so ``except FileNotFoundError`` still catches a
:class:`NotFound`. A backend never lets a library's exception escape: it maps it to one of these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mediasrv.objects import ObjectInfo


class MediaError(Exception):
    """Base class: ``status`` is the HTTP status, ``detail`` the client-safe message."""

    status: int = 502
    default_detail: str = "backend error"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.default_detail
        super().__init__(self.detail)


class InvalidKey(MediaError, ValueError):
    """The key is malformed or would leave the backend's root, prefix or base URL."""

    status = 400
    default_detail = "invalid key"


class NotFound(MediaError, FileNotFoundError):
    """No such backend or object (an upstream 404/410 too)."""

    status = 404
    default_detail = "not found"


class NotModified(MediaError):
    """The client's cached copy is current (304). Carries the metadata for the 304 headers."""

    status = 304
    default_detail = "not modified"

    def __init__(self, info: ObjectInfo | None = None) -> None:
        super().__init__()
        self.info = info


class PreconditionFailed(MediaError):
    """``If-Match`` or ``If-Unmodified-Since`` failed (412)."""

    status = 412
    default_detail = "precondition failed"


class RangeNotSatisfiable(MediaError):
    """No byte of the requested range exists (416); ``size`` is the object's length."""

    status = 416
    default_detail = "range not satisfiable"

    def __init__(self, size: int | None, detail: str | None = None) -> None:
        super().__init__(detail)
        self.size = size


class UpstreamError(MediaError, ConnectionError):
    """The source refused, reset, failed (5xx, unexpected 4xx) or redirected elsewhere (502)."""

    status = 502
    default_detail = "upstream error"


class BackendUnavailable(MediaError):
    """Misconfigured or denied (credentials, missing bucket, upstream 401/403/429), or saturated (503)."""

    status = 503
    default_detail = "backend unavailable"

    def __init__(self, detail: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class UpstreamTimeout(MediaError, TimeoutError):
    """The source did not answer in time (504)."""

    status = 504
    default_detail = "upstream timeout"


class Forbidden(MediaError, PermissionError):
    """The request may not see this object (403)."""

    status = 403
    default_detail = "forbidden"


class SignatureRejected(Forbidden):
    """A signed backend's URL has no valid, unexpired signature (403).

    ``kind`` is ``signature_missing``, ``signature_invalid`` or ``signature_expired``: the
    metric label, and the only thing the detail tells (never which key, never the expected value).
    """

    details = {
        "signature_missing": "signature required: this URL must be signed (no sig parameter)",
        "signature_invalid": "signature invalid",
        "signature_expired": "signature expired",
    }

    def __init__(self, kind: str) -> None:
        if kind not in self.details:
            raise ValueError(f"unknown signature rejection {kind!r}")
        super().__init__(self.details[kind])
        self.kind = kind


class InvalidTransform(MediaError, ValueError):
    """A transform parameter is unknown, repeated or out of range (400); ``parameter`` names it."""

    status = 400
    default_detail = "invalid transform parameter"

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(f"{parameter}: {detail}")
        self.parameter = parameter


class UnprocessableImage(MediaError):
    """The source is not an image mediasrv renders, or is over a size limit (422)."""

    status = 422
    default_detail = "source is not a decodable image"


class RenderUnavailable(BackendUnavailable):
    """A render could not run now: queue full, over its timeout, or its worker died (503).

    ``reason`` is the ``mediasrv_render_rejections_total`` label.
    """

    default_detail = "render unavailable"

    def __init__(self, reason: str, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.reason = reason
