"""mediasrv: a plugin-based media delivery server.

Everything a backend plugin needs is importable from here.
"""

import importlib.metadata

from mediasrv.backend import BackendSettings, ConfigPath, StorageBackend
from mediasrv.chunks import ChunkReader, Chunks
from mediasrv.conditional import check_preconditions, range_applies
from mediasrv.errors import (
    BackendUnavailable,
    Forbidden,
    InvalidKey,
    InvalidTransform,
    MediaError,
    NotFound,
    NotModified,
    PreconditionFailed,
    RangeNotSatisfiable,
    SignatureRejected,
    UnprocessableImage,
    UpstreamError,
    UpstreamTimeout,
)
from mediasrv.grammar import (
    entity_tag,
    format_http_date,
    has_control_character,
    is_header_safe,
    is_strong_entity_tag,
    is_token,
    parse_http_date,
    starts_with_scheme,
)
from mediasrv.hookspecs import hookimpl
from mediasrv.limits import ConnectionLimiter, Slot
from mediasrv.objects import Conditions, Health, ObjectInfo, ObjectStream
from mediasrv.ranges import ByteRange, ContentRange, parse_range, parse_unsatisfied_range, serves
from mediasrv.signing import Signer, Verdict, sign_url
from mediasrv.transforms import Choice, Integer, Number, Operation, flag

try:
    __version__ = importlib.metadata.version("mediasrv")
except importlib.metadata.PackageNotFoundError:  # run from a checkout that is not installed
    __version__ = "0+unknown"

__all__ = [
    "Choice",
    "Integer",
    "InvalidTransform",
    "Number",
    "Operation",
    "UnprocessableImage",
    "flag",
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
    "check_preconditions",
    "entity_tag",
    "format_http_date",
    "has_control_character",
    "is_header_safe",
    "is_strong_entity_tag",
    "is_token",
    "starts_with_scheme",
    "parse_http_date",
    "parse_range",
    "parse_unsatisfied_range",
    "serves",
    "hookimpl",
    "range_applies",
    "sign_url",
]
