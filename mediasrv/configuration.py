"""A settings file loaded and checked: settings, plugins, backend kinds and backend instances.

The one path from a file to configured backends, for the server and the operator commands.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pluggy

from mediasrv.plugins import BackendKind, backend_kinds, get_plugin_manager
from mediasrv.registry import BackendRegistry
from mediasrv.settings import ConfigError, Settings, find_settings_file, load_settings


@dataclass(frozen=True)
class Configuration:
    """What ``load_configuration`` read; the backends are built, not started."""

    path: Path
    settings: Settings
    pm: pluggy.PluginManager
    kinds: dict[str, BackendKind]
    registry: BackendRegistry


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
    try:
        registry = BackendRegistry.from_settings(settings.backends, kinds, path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    _check_signed_backends(path, settings, registry)
    return Configuration(path, settings, pm, kinds, registry)


def _check_signed_backends(path: Path, settings: Settings, registry: BackendRegistry) -> None:
    """A signed backend with no key to verify with is a start-up error, not an open door."""
    if settings.signing.keys:
        return
    for name, backend in registry.backends.items():
        if backend.settings.access == "signed":
            raise ConfigError(f'{path}: backends.{name}.access: "signed" needs [signing] keys, and none are set')
