"""mediasrv's S3 backend (``kind = "s3"``): serves the objects of a bucket, under a prefix; and the
S3 result store (``[cache.s3]``), a bucket of rendered variants shared by every instance."""

from __future__ import annotations

from collections.abc import Callable

from mediasrv import StorageBackend, hookimpl
from mediasrv.cache import ResultStore
from mediasrv_s3.backend import S3Backend, S3Settings
from mediasrv_s3.result_store import S3Store, S3StoreSettings

__all__ = ["S3Backend", "S3Settings", "S3Store", "S3StoreSettings"]


@hookimpl
def mediasrv_register_backends(register: Callable[[type[StorageBackend]], None]) -> None:
    register(S3Backend)


@hookimpl
def mediasrv_register_result_stores(register: Callable[[type[ResultStore]], None]) -> None:
    register(S3Store)
