"""The hooks a mediasrv plugin may implement. Hooks run once, synchronously, at start-up."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from mediasrv.backend import StorageBackend
    from mediasrv.cache.store import ResultStore
    from mediasrv.transforms.operations import Operation

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
def mediasrv_register_transforms(register: Callable[[Operation], None]) -> None:
    """Register the image operations this plugin provides.

    :param register: call ``register(Operation(name, parse, apply))`` once per operation.
        ``name`` becomes a query parameter of the media endpoint (``?grayscale=1``);
        ``parse`` validates its value; ``apply`` is a module-level function run in a render
        worker over the resized image. A name registered twice, or one that is a built-in
        parameter (``width``, ``format``, ...) or reserved (``sig``, ``exp``, ``info``,
        ``fields``), stops start-up.

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
