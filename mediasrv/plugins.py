"""Builds the plugin manager and collects the backend classes that plugins register."""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from mediasrv import hookspecs
from mediasrv.backend import BackendSettings, StorageBackend
from mediasrv.cache.store import ResultStore, StoreSettings
from mediasrv.transforms.operations import Operation
from mediasrv.transforms.options import CORE_PARAMETERS, RESERVED_PARAMETERS

OPERATION_NAME_PATTERN = r"[a-z][a-z0-9_]*"

TRACE_ENV = "MEDIASRV_TRACE_PLUGINS"
"""Set to 1 to log every plugin registration and hook call to the ``mediasrv`` logger."""

logger = logging.getLogger("mediasrv")


class PluginError(Exception):
    """A plugin failed to load or registered something wrong; stops start-up."""


@dataclass(frozen=True)
class BackendKind:
    """A registered backend class and the plugin that registered it."""

    backend_class: type[StorageBackend]
    plugin_name: str


def get_plugin_manager(modules: Iterable[str] = (), search_path: Path | None = None) -> pluggy.PluginManager:
    """A plugin manager with the ``mediasrv`` entry points and ``modules`` registered.

    ``modules`` are importable module names (settings' ``plugins = [...]``), imported with
    ``search_path`` (the settings file's folder) on ``sys.path``.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    if os.environ.get(TRACE_ENV, "") not in ("", "0"):
        enable_tracing(pm)
    pm.add_hookspecs(hookspecs)
    _load_entry_points(pm)
    for name in modules:
        module = _import_plugin(name, search_path)
        if not pm.is_registered(module):  # an installed plugin may be named again in settings
            _register(pm, module, name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {pm.get_name(exc.plugin)!r}: {_one_line(exc)}") from None
    return pm


def enable_tracing(pm: pluggy.PluginManager) -> None:
    """Log each plugin registration and hook call of ``pm`` to the ``mediasrv`` logger (INFO)."""
    pm.trace.root.setwriter(_log_trace)
    pm.enable_tracing()


def _log_trace(message: str) -> None:
    for line in message.rstrip("\n").splitlines():
        logger.info("plugin trace: %s", line)


def backend_kinds(pm: pluggy.PluginManager) -> dict[str, BackendKind]:
    """Every registered backend kind, checked: a StorageBackend subclass, one plugin per kind."""
    check = functools.partial(_check_class, base=StorageBackend, settings_base=BackendSettings)
    found = _registrations(pm, "mediasrv_register_backends", "backend kind", "kind", check)
    return {kind: BackendKind(backend_class, plugin_name) for kind, (backend_class, plugin_name) in found.items()}


@dataclass(frozen=True)
class RegisteredOperation:
    """A registered transform operation and the plugin that registered it."""

    operation: Operation
    plugin_name: str


def transform_operations(pm: pluggy.PluginManager) -> dict[str, RegisteredOperation]:
    """Every registered transform operation by parameter name, checked: an Operation with a
    module-level ``apply``, a name no other plugin, built-in parameter or reserved name has."""
    found = _registrations(pm, "mediasrv_register_transforms", "transform", "transform", _check_operation)
    return {name: RegisteredOperation(operation, plugin_name) for name, (operation, plugin_name) in found.items()}


@dataclass(frozen=True)
class StoreKind:
    """A registered result store class and the plugin that registered it."""

    store_class: type[ResultStore]
    plugin_name: str


def result_store_kinds(pm: pluggy.PluginManager) -> dict[str, StoreKind]:
    """Every registered result store kind, checked: a ResultStore subclass, one plugin per kind."""
    check = functools.partial(_check_class, base=ResultStore, settings_base=StoreSettings)
    found = _registrations(pm, "mediasrv_register_result_stores", "result store kind", "result store", check)
    return {kind: StoreKind(store_class, plugin_name) for kind, (store_class, plugin_name) in found.items()}


def _registrations(
    pm: pluggy.PluginManager, hook: str, noun: str, trace_noun: str, check: Callable[[Any, str], str]
) -> dict[str, tuple[Any, str]]:
    """What each implementation of a register hook registers, by the name ``check`` gives it,
    with the registering plugin's name; a name registered twice is a PluginError.

    Implementations are called one at a time so that an error names its plugin (and so
    pluggy's hook-call tracing does not see them: they are traced here).
    """
    found: dict[str, tuple[Any, str]] = {}
    hooktrace = pm.trace.root.get("hook")
    for impl in getattr(pm.hook, hook).get_hookimpls():
        _refuse_wrapper(impl, hook)

        def register(item: Any, plugin_name: str = impl.plugin_name) -> None:
            name = check(item, plugin_name)
            if name in found:
                other = found[name][1]
                raise PluginError(f"plugin {plugin_name!r}: {noun} {name!r} is already registered by plugin {other!r}")
            found[name] = (item, plugin_name)
            function = item.apply if isinstance(item, Operation) else item  # what the name stands for
            hooktrace(f"  registered {trace_noun} {name!r}: {function.__module__}.{function.__qualname__}")

        hooktrace(f"{hook} of plugin {impl.plugin_name!r}")
        try:
            impl.function(**hook_arguments(impl, register=register))
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {impl.plugin_name!r}: {hook} failed: {exc!r}") from None
    return found


def _check_operation(operation: object, plugin_name: str) -> str:
    if not isinstance(operation, Operation):
        raise PluginError(f"plugin {plugin_name!r}: registered {operation!r}, not a mediasrv Operation")
    name = operation.name
    if not isinstance(name, str) or not re.fullmatch(OPERATION_NAME_PATTERN, name):
        raise PluginError(f"plugin {plugin_name!r}: transform name {name!r} must match {OPERATION_NAME_PATTERN}")
    if name in CORE_PARAMETERS or name in RESERVED_PARAMETERS:
        raise PluginError(f"plugin {plugin_name!r}: transform name {name!r} is a built-in or reserved parameter")
    for part, function in (("parse", operation.parse), ("apply", operation.apply)):
        if not callable(function):
            raise PluginError(f"plugin {plugin_name!r}: transform {name!r}: {part} is not callable")
    apply = operation.apply
    if "<" in getattr(apply, "__qualname__", "<") or not getattr(apply, "__module__", None):
        raise PluginError(
            f"plugin {plugin_name!r}: transform {name!r}: apply must be a module-level function"
            " (it is sent to the render workers by reference)"
        )
    return name


def hook_arguments(impl: pluggy.HookImpl, **arguments: object) -> dict[str, object]:
    """The arguments of a hook call that ``impl`` takes, bound by name as pluggy binds them:
    an implementation may take any subset of the spec's parameters, in any order."""
    return {name: arguments[name] for name in impl.argnames}


def _refuse_wrapper(impl: pluggy.HookImpl, hook: str) -> None:
    """A register hook is called implementation by implementation, so a wrapper would wrap
    nothing: say so at start-up rather than skip it."""
    if impl.hookwrapper or impl.wrapper:
        raise PluginError(f"plugin {impl.plugin_name!r}: {hook} cannot be a hook wrapper (wrapper=True)")


def _check_class(registered: object, plugin_name: str, base: type[Any], settings_base: type[Any]) -> str:
    """The kind of a registered class; PluginError naming the plugin when it is not a proper
    ``base`` subclass (a ``kind`` string, a ``settings_base`` Settings, nothing abstract left)."""
    if not (isinstance(registered, type) and issubclass(registered, base)):
        raise PluginError(f"plugin {plugin_name!r}: registered {registered!r}, not a {base.__name__} subclass")
    kind = getattr(registered, "kind", None)
    if not isinstance(kind, str) or not kind:
        raise PluginError(f"plugin {plugin_name!r}: {registered.__name__} has no 'kind' string")
    settings_class = getattr(registered, "Settings", None)
    if not (isinstance(settings_class, type) and issubclass(settings_class, settings_base)):
        raise PluginError(f"plugin {plugin_name!r}: {registered.__name__}.Settings is not a {settings_base.__name__}")
    abstract: frozenset[str] = getattr(registered, "__abstractmethods__", frozenset())
    if abstract:
        missing = ", ".join(sorted(abstract))
        raise PluginError(f"plugin {plugin_name!r}: {registered.__name__} does not implement {missing}")
    return kind


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    # Import each entry point first so a failure names its plugin; pluggy then registers
    # them (from the import cache) and records their distributions for introspection.
    entry_points = importlib.metadata.entry_points(group=hookspecs.PROJECT)
    _check_unique_names(entry_points)
    for entry_point in entry_points:
        try:
            entry_point.load()
        except Exception as exc:
            raise PluginError(f"plugin {entry_point.name!r} ({entry_point.value}): import failed: {exc!r}") from None
    try:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    except (ValueError, pluggy.PluginValidationError) as exc:
        raise PluginError(f"entry points of group {hookspecs.PROJECT!r}: {_one_line(exc)}") from None
    registertrace = pm.trace.root.get("register")
    for plugin, dist in pm.list_plugin_distinfo():
        module = getattr(plugin, "__name__", repr(plugin))
        registertrace(f"plugin {pm.get_name(plugin)!r}: {module} from {dist.project_name} {dist.version}")


def _check_unique_names(entry_points: importlib.metadata.EntryPoints) -> None:
    """Two distributions declaring one entry point name: pluggy would load the first it finds
    and silently skip the other."""
    seen: dict[str, str] = {}
    for entry_point in entry_points:
        if seen.get(entry_point.name, entry_point.value) != entry_point.value:
            first = seen[entry_point.name]
            raise PluginError(
                f"plugin {entry_point.name!r}: entry point name declared twice, for {first!r} and"
                f" {entry_point.value!r}; one of the two distributions must rename it"
            )
        seen[entry_point.name] = entry_point.value


def _register(pm: pluggy.PluginManager, module: ModuleType, name: str) -> None:
    pm.trace.root.get("register")(f"plugin {name!r}: {getattr(module, '__file__', None) or name}")
    try:
        pm.register(module, name=name)
    except (ValueError, pluggy.PluginValidationError) as exc:
        raise PluginError(f"plugin {name!r}: {_one_line(exc)}") from None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _import_plugin(name: str, search_path: Path | None) -> ModuleType:
    if search_path is not None and str(search_path) not in sys.path:
        sys.path.insert(0, str(search_path))
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise PluginError(f"plugin {name!r} (from settings 'plugins'): import failed: {exc!r}") from None


@dataclass(frozen=True)
class PluginInfo:
    """What a loaded plugin is, for ``/admin/plugins`` and ``mediasrv plugins``."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    kinds: tuple[str, ...]
    operations: tuple[str, ...] = ()


def plugin_infos(
    pm: pluggy.PluginManager,
    kinds: dict[str, BackendKind],
    operations: dict[str, RegisteredOperation] | None = None,
) -> list[PluginInfo]:
    """Every registered plugin, sorted by name, through pluggy's public introspection API."""
    operations = operations or {}
    distributions = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    infos = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin) or repr(plugin)
        dist = distributions.get(id(plugin))
        hook_callers = pm.get_hookcallers(plugin) or []
        infos.append(
            PluginInfo(
                name=name,
                module=getattr(plugin, "__name__", type(plugin).__name__),
                distribution=dist.project_name if dist is not None else None,
                version=dist.version if dist is not None else getattr(plugin, "__version__", None),
                hooks=tuple(sorted(caller.name for caller in hook_callers)),
                kinds=tuple(sorted(kind for kind, info in kinds.items() if info.plugin_name == name)),
                operations=tuple(sorted(op for op, info in operations.items() if info.plugin_name == name)),
            )
        )
    return sorted(infos, key=lambda info: info.name)
