"""What a server serves, as admins see it: the backends with their plugin, health and
redacted settings, and the loaded plugins. Shared by ``/admin`` and the CLI."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from mediasrv.health import HealthMonitor, HealthReport
from mediasrv.plugins import BackendKind, PluginInfo, plugin_infos
from mediasrv.redaction import redacted_settings
from mediasrv.registry import BackendRegistry

if TYPE_CHECKING:
    from mediasrv.configuration import Configuration


class Inventory:
    """The JSON documents of ``/admin/backends`` and ``/admin/plugins``."""

    def __init__(
        self,
        registry: BackendRegistry,
        kinds: dict[str, BackendKind],
        plugins: list[PluginInfo],
        monitor: HealthMonitor,
    ) -> None:
        self.registry = registry
        self.kinds = kinds
        self.plugins = plugins
        self.monitor = monitor

    @classmethod
    def of(cls, configuration: Configuration, monitor: HealthMonitor) -> Inventory:
        """The listing of a loaded configuration's backends and plugins, with ``monitor``'s health."""
        plugins = plugin_infos(configuration.pm, configuration.kinds, configuration.registered_operations)
        return cls(configuration.registry, configuration.kinds, plugins, monitor)

    async def backends(self) -> list[dict[str, Any]]:
        """Every backend, in settings order, with a health report at most ``max_age`` old."""
        reports = await self.monitor.reports()
        return [self._backend(name, reports[name]) for name in self.registry.backends]

    async def backend(self, name: str) -> dict[str, Any] | None:
        """One backend, or None if no backend has that name."""
        if name not in self.registry.backends:
            return None
        reports = await self.monitor.reports()
        return self._backend(name, reports[name])

    def plugin_list(self) -> list[dict[str, Any]]:
        """Every loaded plugin, as ``plugin_document`` gives it."""
        return [plugin_document(info) for info in self.plugins]

    def _backend(self, name: str, report: HealthReport) -> dict[str, Any]:
        backend = self.registry.backends[name]
        return {
            "name": name,
            "kind": backend.kind,
            "plugin": self._plugin_of(backend.kind),
            "health": report.as_json(),
            "settings": redacted_settings(backend.settings),
        }

    def _plugin_of(self, kind: str) -> dict[str, Any]:
        plugin_name = self.kinds[kind].plugin_name
        info = next((info for info in self.plugins if info.name == plugin_name), None)
        if info is None:
            return {"module": None, "version": None}
        return {"module": info.module, "version": info.version}


def plugin_document(info: PluginInfo) -> dict[str, Any]:
    """A plugin as JSON: name, module, distribution, version, hooks and backend kinds."""
    return {**asdict(info), "hooks": list(info.hooks), "kinds": list(info.kinds)}
