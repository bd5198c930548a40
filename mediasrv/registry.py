"""The configured backend instances, built from settings and the registered kinds."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mediasrv.backend import BackendSettings, StorageBackend
from mediasrv.errors import BackendUnavailable, NotFound
from mediasrv.plugins import BackendKind
from mediasrv.settings import ConfigError, describe_validation_error

logger = logging.getLogger("mediasrv")


class BackendRegistry:
    """The backends by name; started and stopped with the app."""

    stop_timeout = 10.0

    def __init__(self, backends: dict[str, StorageBackend]) -> None:
        self.backends = backends
        self.start_errors: dict[str, str] = {}

    @classmethod
    def from_settings(
        cls, tables: dict[str, dict[str, Any]], kinds: dict[str, BackendKind], config_dir: Path
    ) -> BackendRegistry:
        """One backend per ``[backends.NAME]`` table; ConfigError names the first bad table."""
        backends = {name: _build_backend(name, table, kinds, config_dir) for name, table in tables.items()}
        return cls(backends)

    def get(self, name: str) -> StorageBackend:
        """The backend called ``name``: NotFound if none, BackendUnavailable if it failed to start."""
        backend = self.backends.get(name)
        if backend is None:
            raise NotFound(f"no backend named {name!r}")
        if name in self.start_errors:
            raise BackendUnavailable(f"backend {name!r} failed to start")
        return backend

    async def start(self) -> None:
        """Start every backend; one that fails is logged and answers 503, the rest serve."""
        for name, backend in self.backends.items():
            try:
                await backend.start()
            except Exception as exc:
                self.start_errors[name] = repr(exc)
                logger.error("backend %r (%s) failed to start: %r", name, backend.kind, exc)
            else:
                logger.info("backend %r (%s) started", name, backend.kind)

    async def stop(self) -> None:
        """Stop every started backend, each within ``stop_timeout``."""
        for name, backend in self.backends.items():
            if name in self.start_errors:
                continue
            try:
                async with asyncio.timeout(self.stop_timeout):
                    await backend.stop()
            except Exception as exc:
                logger.error("backend %r (%s) failed to stop: %r", name, backend.kind, exc)


def _build_backend(name: str, table: dict[str, Any], kinds: dict[str, BackendKind], config_dir: Path) -> StorageBackend:
    kind = table.get("kind")
    if not kind:
        raise ConfigError(f"backends.{name}.kind: missing")
    if kind not in kinds:
        available = ", ".join(sorted(kinds)) or "none"
        raise ConfigError(f"backends.{name}.kind: no plugin provides kind {kind!r} (available: {available})")
    backend_kind = kinds[kind]
    backend_class = backend_kind.backend_class
    try:
        settings = backend_class.Settings.model_validate(table, context={"config_dir": config_dir})
    except ValidationError as exc:
        detail = describe_validation_error(exc, prefix=f"backends.{name}")
        raise ConfigError(f"{detail} (plugin {backend_kind.plugin_name!r}{_settings_hint(backend_class)})") from None
    except Exception as exc:  # a validator that raised something pydantic does not wrap
        raise _rejected(name, backend_kind, exc) from None
    try:
        return backend_class(name, settings)
    except Exception as exc:
        raise _rejected(name, backend_kind, exc) from None


def _settings_hint(backend_class: type[StorageBackend]) -> str:
    """Why every key but the common ones is refused, when the class forgot its Settings model."""
    if backend_class.Settings is not BackendSettings:
        return ""
    common = ", ".join(BackendSettings.model_fields)
    return f"; {backend_class.__name__} defines no Settings class, so only {common} are accepted"


def _rejected(name: str, backend_kind: BackendKind, exc: Exception) -> ConfigError:
    return ConfigError(f"backends.{name}: plugin {backend_kind.plugin_name!r} rejected its settings: {exc!r}")
