"""The registered store kinds, and the configured stores built from ``[cache]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pluggy
from pydantic import ValidationError

from mediasrv.cache.disk import DiskSettings
from mediasrv.cache.settings import CacheSettings
from mediasrv.cache.store import ResultStore, StoreSettings
from mediasrv.plugins import PluginError, collect_registrations
from mediasrv.settings import ConfigError, describe_validation_error

DISK_KEYS = tuple(DiskSettings.model_fields)

StoreKinds = dict[str, tuple[type[ResultStore], str]]
"""Store classes by kind, with the name of the plugin that registered each."""


def store_kinds(pm: pluggy.PluginManager) -> StoreKinds:
    """Every registered result store kind, checked like backend kinds."""
    return collect_registrations(pm, "mediasrv_register_result_stores", _check_store_class, "result store")


def build_stores(settings: CacheSettings, kinds: StoreKinds, config_dir: Path) -> list[ResultStore]:
    """The stores ``[cache]`` configures, in lookup order: disk (when ``path`` is set), then
    one per ``[cache.KIND]`` table in the file's order. ConfigError names the bad key."""
    tables: list[tuple[str, str, dict[str, Any]]] = []
    if settings.path:
        tables.append(("disk", "cache", {key: getattr(settings, key) for key in DISK_KEYS}))
    tables += [(kind, f"cache.{kind}", table) for kind, table in settings.store_tables().items()]
    return [_build(kind, prefix, table, kinds, config_dir) for kind, prefix, table in tables]


def _build(kind: str, prefix: str, table: dict[str, Any], kinds: StoreKinds, config_dir: Path) -> ResultStore:
    if kind not in kinds:
        available = ", ".join(sorted(kinds)) or "none"
        raise ConfigError(f"{prefix}: no plugin provides result store kind {kind!r} (available: {available})")
    store_class, plugin_name = kinds[kind]
    try:
        store_settings = store_class.Settings.model_validate(table, context={"config_dir": config_dir})
        return store_class(store_settings)
    except ValidationError as exc:
        raise ConfigError(f"{describe_validation_error(exc, prefix=prefix)} (plugin {plugin_name!r})") from None
    except Exception as exc:
        raise ConfigError(f"{prefix}: plugin {plugin_name!r} rejected its settings: {exc!r}") from None


def _check_store_class(store_class: object, plugin_name: str) -> str:
    if not (isinstance(store_class, type) and issubclass(store_class, ResultStore)):
        raise PluginError(f"plugin {plugin_name!r}: registered {store_class!r}, not a ResultStore subclass")
    kind = getattr(store_class, "kind", None)
    if not isinstance(kind, str) or not kind:
        raise PluginError(f"plugin {plugin_name!r}: {store_class.__name__} has no 'kind' string")
    if not (isinstance(store_class.Settings, type) and issubclass(store_class.Settings, StoreSettings)):
        raise PluginError(f"plugin {plugin_name!r}: {store_class.__name__}.Settings is not a StoreSettings")
    if store_class.__abstractmethods__:
        missing = ", ".join(sorted(store_class.__abstractmethods__))
        raise PluginError(f"plugin {plugin_name!r}: {store_class.__name__} does not implement {missing}")
    return kind
