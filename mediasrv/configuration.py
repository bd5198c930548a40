"""A settings file loaded and checked: settings, plugins, backend kinds and backend instances.

The one path from a file to configured backends, for the server and the operator commands.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pluggy

from mediasrv.cache.store import ResultStore
from mediasrv.cache.stores import build_stores
from mediasrv.errors import InvalidTransform
from mediasrv.plugins import (
    BackendKind,
    RegisteredOperation,
    StoreKind,
    backend_kinds,
    get_plugin_manager,
    result_store_kinds,
    transform_operations,
)
from mediasrv.registry import BackendRegistry
from mediasrv.settings import ConfigError, Settings, find_settings_file, load_settings
from mediasrv.transforms.operations import Operation
from mediasrv.transforms.options import CORE_PARAMETERS, build_options, preset_texts


@dataclass(frozen=True)
class Configuration:
    """What ``load_configuration`` read; the backends are built, not started."""

    path: Path
    settings: Settings
    pm: pluggy.PluginManager
    kinds: dict[str, BackendKind]
    registry: BackendRegistry
    registered_operations: dict[str, RegisteredOperation] = field(default_factory=dict)
    stores: list[ResultStore] = field(default_factory=list)  # the result cache's tiers, in lookup order
    store_kinds: dict[str, StoreKind] = field(default_factory=dict)

    @property
    def operations(self) -> dict[str, Operation]:
        """The transform operations by parameter name."""
        return {name: registered.operation for name, registered in self.registered_operations.items()}


def load_plugins(config: str | os.PathLike[str] | None) -> tuple[Path, Settings, pluggy.PluginManager]:
    """The settings file (``config``, else ``$MEDIASRV_CONFIG``, else ./settings.toml), its
    settings and the plugin manager with its plugins; ConfigError or PluginError if invalid."""
    path = find_settings_file(config)
    settings = load_settings(path)
    return path, settings, get_plugin_manager(settings.plugins, search_path=path.parent)


def load_configuration(config: str | os.PathLike[str] | None) -> Configuration:
    """``load_plugins``, then every backend table checked and built; a ConfigError names the file."""
    path, settings, pm = load_plugins(config)
    kinds = backend_kinds(pm)
    stores = result_store_kinds(pm)
    try:
        registry = BackendRegistry.from_settings(settings.backends, kinds, path.parent)
        cache_stores = build_stores(settings.cache, stores, path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    _check_signed_backends(path, settings, registry)
    operations = transform_operations(pm)
    _check_presets(path, settings, operations)
    return Configuration(path, settings, pm, kinds, registry, operations, cache_stores, stores)


def _check_presets(path: Path, settings: Settings, operations: dict[str, RegisteredOperation]) -> None:
    """Every ``[transforms.presets.NAME]`` must be valid parameters: a start-up error, not a 400 later."""
    known = {name: registered.operation for name, registered in operations.items()}
    for name, preset in settings.transforms.presets.items():
        try:
            build_options(preset_texts(preset), settings.transforms, known, preset=name)
        except InvalidTransform as exc:
            raise ConfigError(f"{path}: transforms.presets.{name}.{exc.detail}") from None
        unknown = sorted(set(preset) - set(CORE_PARAMETERS) - set(known))
        if unknown:
            raise ConfigError(f"{path}: transforms.presets.{name}.{unknown[0]}: unknown transform parameter")


def _check_signed_backends(path: Path, settings: Settings, registry: BackendRegistry) -> None:
    """A signed backend with no key to verify with is a start-up error, not an open door."""
    if settings.signing.keys:
        return
    for name, backend in registry.backends.items():
        if backend.settings.access == "signed":
            raise ConfigError(f'{path}: backends.{name}.access: "signed" needs [signing] keys, and none are set')
