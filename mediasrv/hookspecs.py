"""The hooks a mediasrv plugin may implement. Hooks run once, synchronously, at start-up."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from mediasrv.backend import StorageBackend

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
