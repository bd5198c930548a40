"""mediasrv's S3 backend (``kind = "s3"``): serves the objects of a bucket, under a prefix."""

from __future__ import annotations

from collections.abc import Callable

from mediasrv import StorageBackend, hookimpl
from mediasrv_s3.backend import S3Backend, S3Settings

__all__ = ["S3Backend", "S3Settings"]


@hookimpl
def mediasrv_register_backends(register: Callable[[type[StorageBackend]], None]) -> None:
    register(S3Backend)
