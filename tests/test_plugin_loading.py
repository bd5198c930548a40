"""Plugin loading: entry points, settings' plugin modules, backend kinds and the registry."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pluggy
import pytest

from mediasrv.errors import NotFound
from mediasrv.plugins import PluginError, backend_kinds, get_plugin_manager, hook_arguments
from mediasrv.registry import BackendRegistry
from mediasrv.settings import ConfigError
from mediasrv_local import LocalBackend, LocalSettings

WritePlugin = Callable[[str], str]

# A complete backend plugin; KIND is replaced per test.
DEMO_PLUGIN = """
from mediasrv import BackendSettings, Health, ObjectInfo, StorageBackend, hookimpl


class DemoSettings(BackendSettings):
    url: str
    retries: int = 3


class DemoBackend(StorageBackend):
    kind = "KIND"
    Settings = DemoSettings

    async def stat(self, key):
        return ObjectInfo(size=0)

    async def open(self, key, byte_range, conditions):
        raise NotImplementedError

    async def health(self):
        return Health(ok=True)


@hookimpl
def mediasrv_register_backends(register):
    register(DemoBackend)
"""


@pytest.fixture
def write_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WritePlugin]:
    """Writes a plugin module into tmp_path under a unique name; returns the name."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # get_plugin_manager adds search_path
    names: list[str] = []

    def write(source: str) -> str:
        name = f"mediasrv_test_plugin_{uuid.uuid4().hex}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        importlib.invalidate_caches()
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


def demo_plugin(kind: str = "demo") -> str:
    return DEMO_PLUGIN.replace('"KIND"', repr(kind))


def test_get_plugin_manager_registers_local_entry_point() -> None:
    pm = get_plugin_manager()
    plugin = pm.get_plugin("local")
    assert plugin is not None
    assert plugin.__name__ == "mediasrv_local"
    assert any(dist.project_name == "mediasrv" for _, dist in pm.list_plugin_distinfo())


def test_backend_kinds_local_from_entry_point() -> None:
    kinds = backend_kinds(get_plugin_manager())
    assert "local" in kinds
    assert kinds["local"].backend_class is LocalBackend
    assert kinds["local"].plugin_name == "local"


def test_get_plugin_manager_loads_module_from_search_path(tmp_path: Path, write_plugin: WritePlugin) -> None:
    name = write_plugin(demo_plugin("demo"))
    pm = get_plugin_manager([name], search_path=tmp_path)
    assert pm.get_plugin(name) is sys.modules[name]
    kinds = backend_kinds(pm)
    assert set(kinds) >= {"local", "demo"}
    assert kinds["demo"].plugin_name == name
    assert kinds["demo"].backend_class.__name__ == "DemoBackend"
    assert kinds["local"].plugin_name == "local"


def test_get_plugin_manager_module_named_twice_loads_once(tmp_path: Path, write_plugin: WritePlugin) -> None:
    name = write_plugin(demo_plugin("demo"))
    kinds = backend_kinds(get_plugin_manager([name, name], search_path=tmp_path))
    assert kinds["demo"].plugin_name == name


def test_get_plugin_manager_entry_point_module_named_in_settings(tmp_path: Path) -> None:
    # `plugins = ["mediasrv_local"]` names a module already loaded from its entry point:
    # harmless, or at worst a PluginError naming it, never an unexplained exception.
    try:
        pm = get_plugin_manager(["mediasrv_local"], search_path=tmp_path)
    except PluginError as exc:
        assert "mediasrv_local" in str(exc)
    else:
        assert backend_kinds(pm)["local"].backend_class is LocalBackend


def test_plugin_module_without_hook_registers_nothing(tmp_path: Path, write_plugin: WritePlugin) -> None:
    name = write_plugin("VALUE = 1\n")
    kinds = backend_kinds(get_plugin_manager([name], search_path=tmp_path))
    assert set(kinds) == set(backend_kinds(get_plugin_manager()))  # the built-ins only


def plugin_error(write_plugin: WritePlugin, tmp_path: Path, source: str) -> tuple[str, str]:
    """Load a plugin expected to fail; returns its name and the error message."""
    name = write_plugin(source)
    with pytest.raises(PluginError) as caught:
        backend_kinds(get_plugin_manager([name], search_path=tmp_path))
    return name, str(caught.value)


def test_plugin_import_error(tmp_path: Path, write_plugin: WritePlugin) -> None:
    name, message = plugin_error(write_plugin, tmp_path, 'raise RuntimeError("boom at import")\n')
    assert name in message
    assert "boom at import" in message


def test_plugin_syntax_error(tmp_path: Path, write_plugin: WritePlugin) -> None:
    name, message = plugin_error(write_plugin, tmp_path, "def broken(:\n")
    assert name in message


def test_plugin_missing_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    name = f"mediasrv_absent_{uuid.uuid4().hex}"
    with pytest.raises(PluginError) as caught:
        get_plugin_manager([name], search_path=tmp_path)
    assert name in str(caught.value)


@pytest.mark.parametrize("registered", ["int", "object()", "'local'", "None", "Health"])
def test_plugin_registers_non_storage_backend(tmp_path: Path, write_plugin: WritePlugin, registered: str) -> None:
    name, message = plugin_error(
        write_plugin,
        tmp_path,
        f"""
        from mediasrv import Health, hookimpl

        @hookimpl
        def mediasrv_register_backends(register):
            register({registered})
    """,
    )
    assert name in message
    assert "StorageBackend" in message


def test_plugin_registers_duplicate_kind(tmp_path: Path, write_plugin: WritePlugin) -> None:
    name, message = plugin_error(write_plugin, tmp_path, demo_plugin("local"))
    assert name in message
    assert "'local'" in message
    assert "already registered" in message


def test_plugin_two_modules_same_kind(tmp_path: Path, write_plugin: WritePlugin) -> None:
    first = write_plugin(demo_plugin("demo"))
    second = write_plugin(demo_plugin("demo"))
    with pytest.raises(PluginError) as caught:
        backend_kinds(get_plugin_manager([first, second], search_path=tmp_path))
    assert second in str(caught.value)
    assert first in str(caught.value)


def test_plugin_misspelled_hook(tmp_path: Path, write_plugin: WritePlugin) -> None:
    name = write_plugin("""
        from mediasrv import hookimpl

        @hookimpl
        def mediasrv_register_backend(register):
            pass
    """)
    with pytest.raises(PluginError) as caught:
        get_plugin_manager([name], search_path=tmp_path)
    assert name in str(caught.value)
    assert "mediasrv_register_backend" in str(caught.value)


def test_plugin_hook_with_unknown_argument(tmp_path: Path, write_plugin: WritePlugin) -> None:
    name = write_plugin("""
        from mediasrv import hookimpl

        @hookimpl
        def mediasrv_register_backends(reg):
            pass
    """)
    with pytest.raises(PluginError) as caught:
        get_plugin_manager([name], search_path=tmp_path)
    assert name in str(caught.value)


def test_plugin_backend_missing_abstract_method(tmp_path: Path, write_plugin: WritePlugin) -> None:
    source = demo_plugin("demo").replace("    async def health(self):\n        return Health(ok=True)\n", "")
    assert "def health" not in source
    name, message = plugin_error(write_plugin, tmp_path, source)
    assert name in message
    assert "health" in message


def test_plugin_backend_without_kind(tmp_path: Path, write_plugin: WritePlugin) -> None:
    name, message = plugin_error(write_plugin, tmp_path, demo_plugin("demo").replace("    kind = 'demo'\n", ""))
    assert name in message
    assert "kind" in message


def test_plugin_backend_settings_not_backend_settings(tmp_path: Path, write_plugin: WritePlugin) -> None:
    source = demo_plugin("demo").replace("class DemoSettings(BackendSettings):", "class DemoSettings:")
    name, message = plugin_error(write_plugin, tmp_path, source)
    assert name in message
    assert "Settings" in message


def test_plugin_hook_raises(tmp_path: Path, write_plugin: WritePlugin) -> None:
    name, message = plugin_error(
        write_plugin,
        tmp_path,
        """
        from mediasrv import hookimpl

        @hookimpl
        def mediasrv_register_backends(register):
            raise KeyError("hook exploded")
    """,
    )
    assert name in message
    assert "hook exploded" in message


@pytest.mark.parametrize("marker", ["hookimpl(wrapper=True)", "hookimpl(hookwrapper=True)"])
def test_plugin_register_hook_as_a_wrapper_is_refused(tmp_path: Path, write_plugin: WritePlugin, marker: str) -> None:
    # It used to be skipped without a word: its backends silently missing.
    name, message = plugin_error(
        write_plugin,
        tmp_path,
        f"""
        from mediasrv import hookimpl

        @{marker}
        def mediasrv_register_backends(register):
            yield
    """,
    )
    assert name in message
    assert "mediasrv_register_backends cannot be a hook wrapper" in message


def test_hook_arguments_are_bound_by_name() -> None:
    # As pluggy binds them: each parameter gets its own argument, whatever the order or subset.
    spec = pluggy.HookspecMarker("demo")
    impl = pluggy.HookimplMarker("demo")

    class Spec:
        @spec
        def demo_hook(self, register: object, settings: object) -> None: ...

    class Plugin:
        @impl
        def demo_hook(self, settings: object, register: object) -> None: ...

    class OnlySettings:
        @impl
        def demo_hook(self, settings: object) -> None: ...

    pm = pluggy.PluginManager("demo")
    pm.add_hookspecs(Spec)
    pm.register(Plugin())
    pm.register(OnlySettings())
    bound = [hook_arguments(each, register="R", settings="S") for each in pm.hook.demo_hook.get_hookimpls()]
    assert sorted(bound, key=len) == [{"settings": "S"}, {"settings": "S", "register": "R"}]


# BackendRegistry.from_settings: one backend per [backends.NAME] table.


def test_registry_settings_rejected_by_backend_model(tmp_path: Path, write_plugin: WritePlugin) -> None:
    name = write_plugin(demo_plugin("demo"))
    kinds = backend_kinds(get_plugin_manager([name], search_path=tmp_path))
    with pytest.raises(ConfigError) as caught:
        BackendRegistry.from_settings({"remote": {"kind": "demo", "url": "x", "retries": "many"}}, kinds, tmp_path)
    message = str(caught.value)
    assert "backends.remote.retries" in message
    assert name in message
    assert "\n" not in message


def test_registry_settings_missing_required_field(tmp_path: Path, write_plugin: WritePlugin) -> None:
    name = write_plugin(demo_plugin("demo"))
    kinds = backend_kinds(get_plugin_manager([name], search_path=tmp_path))
    with pytest.raises(ConfigError) as caught:
        BackendRegistry.from_settings({"remote": {"kind": "demo"}}, kinds, tmp_path)
    assert "backends.remote.url" in str(caught.value)
    assert name in str(caught.value)


def test_registry_builds_plugin_backend(tmp_path: Path, write_plugin: WritePlugin) -> None:
    name = write_plugin(demo_plugin("demo"))
    kinds = backend_kinds(get_plugin_manager([name], search_path=tmp_path))
    registry = BackendRegistry.from_settings({"remote": {"kind": "demo", "url": "http://upstream"}}, kinds, tmp_path)
    backend = registry.get("remote")
    assert type(backend).__name__ == "DemoBackend"
    assert backend.name == "remote"
    assert backend.settings.url == "http://upstream"  # type: ignore[attr-defined]
    assert backend.settings.retries == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"kind": "local", "root": ".", "bogus": 1}, "backends.media.bogus"),
        ({"kind": "local"}, "backends.media.root"),
        ({"kind": "local", "root": ".", "chunk_size": 10}, "backends.media.chunk_size"),
    ],
)
def test_registry_local_settings_rejected(tmp_path: Path, table: dict[str, object], key: str) -> None:
    kinds = backend_kinds(get_plugin_manager())
    with pytest.raises(ConfigError) as caught:
        BackendRegistry.from_settings({"media": table}, kinds, tmp_path)
    assert key in str(caught.value)
    assert "'local'" in str(caught.value)


def test_registry_unknown_kind_lists_available(tmp_path: Path, write_plugin: WritePlugin) -> None:
    name = write_plugin(demo_plugin("demo"))
    kinds = backend_kinds(get_plugin_manager([name], search_path=tmp_path))
    with pytest.raises(ConfigError) as caught:
        BackendRegistry.from_settings({"media": {"kind": "s4"}}, kinds, tmp_path)
    message = str(caught.value)
    assert "backends.media.kind" in message
    assert "'s4'" in message
    builtins = backend_kinds(get_plugin_manager())
    assert f"(available: {', '.join(sorted({'demo', *builtins}))})" in message


def test_registry_missing_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"backends\.media\.kind"):
        BackendRegistry.from_settings({"media": {"root": "."}}, backend_kinds(get_plugin_manager()), tmp_path)


def test_registry_two_local_backends_are_distinct(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    tables = {
        "one": {"kind": "local", "root": str(tmp_path / "one")},
        "two": {"kind": "local", "root": str(tmp_path / "two"), "chunk_size": 8192},
    }
    registry = BackendRegistry.from_settings(tables, backend_kinds(get_plugin_manager()), tmp_path)
    one, two = registry.get("one"), registry.get("two")
    assert isinstance(one, LocalBackend) and isinstance(two, LocalBackend)
    assert one is not two
    assert (one.name, two.name) == ("one", "two")
    assert one.root == os.path.realpath(tmp_path / "one")
    assert two.root == os.path.realpath(tmp_path / "two")
    assert one.settings.chunk_size == 1024 * 1024
    assert two.settings.chunk_size == 8192


def test_registry_relative_root_resolves_against_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_dir = tmp_path / "conf"
    (config_dir / "media").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory plays no part
    tables = {"media": {"kind": "local", "root": "media"}, "up": {"kind": "local", "root": "../shared"}}
    registry = BackendRegistry.from_settings(tables, backend_kinds(get_plugin_manager()), config_dir)
    media = registry.get("media")
    assert isinstance(media, LocalBackend)
    assert isinstance(media.settings, LocalSettings)
    assert media.settings.root == config_dir / "media"
    assert media.root == os.path.realpath(config_dir / "media")
    up = registry.get("up")
    assert isinstance(up, LocalBackend)
    assert up.root == os.path.realpath(tmp_path / "shared")


def test_registry_absolute_root_ignores_config_dir(tmp_path: Path) -> None:
    root = tmp_path / "abs"
    registry = BackendRegistry.from_settings(
        {"media": {"kind": "local", "root": str(root)}}, backend_kinds(get_plugin_manager()), tmp_path / "conf"
    )
    backend = registry.get("media")
    assert isinstance(backend, LocalBackend)
    assert backend.root == os.path.realpath(root)


def test_registry_get_unknown_name_is_not_found(tmp_path: Path) -> None:
    registry = BackendRegistry.from_settings({}, backend_kinds(get_plugin_manager()), tmp_path)
    with pytest.raises(NotFound):
        registry.get("media")
