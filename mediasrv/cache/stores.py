"""The configured result stores, built from ``[cache]`` and the registered store kinds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mediasrv.cache.disk import DiskSettings
from mediasrv.cache.settings import CacheSettings
from mediasrv.cache.store import ResultStore
from mediasrv.plugins import StoreKind
from mediasrv.settings import ConfigError, describe_validation_error

DISK_KEYS = tuple(DiskSettings.model_fields)


def build_stores(settings: CacheSettings, kinds: dict[str, StoreKind], config_dir: Path) -> list[ResultStore]:
    """The stores ``[cache]`` configures, in lookup order: disk (when ``path`` is set), then
    one per ``[cache.KIND]`` table in the file's order. ConfigError names the bad key."""
    tables: list[tuple[str, str, dict[str, Any]]] = []
    if settings.path:
        tables.append(("disk", "cache", {key: getattr(settings, key) for key in DISK_KEYS}))
    tables += [(kind, f"cache.{kind}", table) for kind, table in settings.store_tables().items()]
    return [_build(kind, prefix, table, kinds, config_dir) for kind, prefix, table in tables]


def _build(kind: str, prefix: str, table: dict[str, Any], kinds: dict[str, StoreKind], config_dir: Path) -> ResultStore:
    if kind not in kinds:
        available = ", ".join(sorted(kinds)) or "none"
        raise ConfigError(f"{prefix}: no plugin provides result store kind {kind!r} (available: {available})")
    store_class, plugin_name = kinds[kind].store_class, kinds[kind].plugin_name
    try:
        store_settings = store_class.Settings.model_validate(table, context={"config_dir": config_dir})
        return store_class(store_settings)
    except ValidationError as exc:
        raise ConfigError(f"{describe_validation_error(exc, prefix=prefix)} (plugin {plugin_name!r})") from None
    except Exception as exc:
        raise ConfigError(f"{prefix}: plugin {plugin_name!r} rejected its settings: {exc!r}") from None
