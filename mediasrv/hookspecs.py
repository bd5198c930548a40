"""The hooks a mediasrv plugin may implement. Hooks run once, synchronously, at start-up."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from mediasrv.backend import StorageBackend
    from mediasrv.cache.store import ResultStore

PROJECT = "mediasrv"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marks a plugin's hook implementation: ``@hookimpl def mediasrv_register_backends(register): ...``."""


@hookspec
def mediasrv_register_backends(register: Callable[[type[StorageBackend]], None]) -> None:
    """Register the StorageBackend classes this plugin provides.

    :param register: call ``register(BackendClass)`` once per class. The class's ``kind``
        is what settings name in ``[backends.NAME] kind = "..."``; a kind registered by two
        plugins, or a class that is not a StorageBackend subclass, stops start-up.

    Every plugin's implementation is called; return values are ignored.
    """


@hookspec
def mediasrv_register_result_stores(register: Callable[[type[ResultStore]], None]) -> None:
    """Register the ResultStore classes (tiers of the result cache) this plugin provides.

    :param register: call ``register(StoreClass)`` once per class. The class's ``kind`` is
        the ``[cache.KIND]`` table that configures it (``disk`` is ``[cache]`` itself); a kind
        registered by two plugins, or a class that is not a ResultStore subclass, stops start-up.

    Every plugin's implementation is called; return values are ignored.
    """
