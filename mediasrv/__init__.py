"""mediasrv: a plugin-based media delivery server.

Everything a backend plugin needs is importable from here.
"""

import importlib.metadata

from mediasrv.backend import BackendSettings, ConfigPath, StorageBackend
from mediasrv.chunks import ChunkReader
from mediasrv.conditional import check_preconditions, parse_http_date, range_applies
from mediasrv.errors import (
    BackendUnavailable,
    Forbidden,
    InvalidKey,
    MediaError,
    NotFound,
    NotModified,
    PreconditionFailed,
    RangeNotSatisfiable,
    SignatureRejected,
    UpstreamError,
    UpstreamTimeout,
)
from mediasrv.hookspecs import hookimpl
from mediasrv.limits import ConnectionLimiter, Slot
from mediasrv.objects import ByteRange, Chunks, Conditions, ContentRange, Health, ObjectInfo, ObjectStream
from mediasrv.signing import Signer, Verdict, sign_url
from mediasrv.threads import acquire_in_thread, acquire_shielded

__version__ = importlib.metadata.version("mediasrv")

__all__ = [
    "BackendSettings",
    "BackendUnavailable",
    "ByteRange",
    "ChunkReader",
    "Chunks",
    "ConfigPath",
    "ConnectionLimiter",
    "Conditions",
    "ContentRange",
    "Forbidden",
    "Health",
    "InvalidKey",
    "MediaError",
    "NotFound",
    "NotModified",
    "ObjectInfo",
    "ObjectStream",
    "PreconditionFailed",
    "RangeNotSatisfiable",
    "SignatureRejected",
    "Signer",
    "Slot",
    "StorageBackend",
    "UpstreamError",
    "UpstreamTimeout",
    "Verdict",
    "acquire_in_thread",
    "acquire_shielded",
    "check_preconditions",
    "parse_http_date",
    "hookimpl",
    "range_applies",
    "sign_url",
]
