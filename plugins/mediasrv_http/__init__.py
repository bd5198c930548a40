"""mediasrv's upstream HTTP backend (``kind = "http"``): streams ``base_url + key``
from another HTTP server through one pooled aiohttp session per backend."""

from __future__ import annotations

from collections.abc import Callable

from mediasrv import StorageBackend, hookimpl
from mediasrv_http.backend import HttpBackend
from mediasrv_http.settings import HttpSettings

__all__ = ["HttpBackend", "HttpSettings"]


@hookimpl
def mediasrv_register_backends(register: Callable[[type[StorageBackend]], None]) -> None:
    register(HttpBackend)
