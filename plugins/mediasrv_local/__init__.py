"""mediasrv's local disk backend (``kind = "local"``): serves the files under a folder."""

from __future__ import annotations

from collections.abc import Callable

from mediasrv import StorageBackend, hookimpl
from mediasrv_local.backend import LocalBackend, LocalSettings

__all__ = ["LocalBackend", "LocalSettings"]


@hookimpl
def mediasrv_register_backends(register: Callable[[type[StorageBackend]], None]) -> None:
    register(LocalBackend)
