"""mediasrv-zip: a mediasrv backend (``kind = "zip"``) serving the members of a zip archive."""

from __future__ import annotations

from collections.abc import Callable

from mediasrv import StorageBackend, hookimpl
from mediasrv_zip.backend import ZipBackend, ZipSettings

__all__ = ["ZipBackend", "ZipSettings"]


@hookimpl
def mediasrv_register_backends(register: Callable[[type[StorageBackend]], None]) -> None:
    register(ZipBackend)
