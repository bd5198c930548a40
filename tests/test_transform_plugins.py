"""Transform operations from plugins: the built-ins arrive through the hook like any plugin's,
and every registration mistake or bad preset stops start-up with one line naming it."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediasrv.configuration import load_configuration
from mediasrv.plugins import PluginError, get_plugin_manager, transform_operations
from mediasrv.settings import ConfigError
from mediasrv.transforms import operations as builtins


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("transform_plugin_"):
            sys.modules.pop(name, None)


def write_plugin(folder: Path, body: str) -> str:
    name = f"transform_plugin_{uuid.uuid4().hex}"
    source = "from mediasrv import Operation, Number, flag, hookimpl\n" + textwrap.dedent(body)
    (folder / f"{name}.py").write_text(source)
    importlib.invalidate_caches()
    return name


def operations_of(folder: Path, *names: str) -> dict[str, object]:
    return dict(transform_operations(get_plugin_manager(names, search_path=folder)))


def test_builtins_are_registered_through_the_hook() -> None:
    registered = transform_operations(get_plugin_manager())
    assert set(registered) == {"blur", "sharpen"}
    assert registered["blur"].plugin_name == "transforms"
    assert registered["blur"].operation.apply is builtins.blur


def test_a_plugin_operation_is_registered(plugin_dir: Path) -> None:
    name = write_plugin(
        plugin_dir,
        """
        def invert(image, enabled):
            return image.invert() if enabled else image

        @hookimpl
        def mediasrv_register_transforms(register):
            register(Operation("invert", flag, invert))
        """,
    )
    registered = operations_of(plugin_dir, name)
    assert set(registered) == {"blur", "sharpen", "invert"}


@pytest.mark.parametrize(
    ("registration", "message"),
    [
        ('register(Operation("blur", flag, apply))', "transform 'blur' is already registered by plugin 'transforms'"),
        ('register(Operation("width", flag, apply))', "'width' is a built-in or reserved parameter"),
        ('register(Operation("sig", flag, apply))', "'sig' is a built-in or reserved parameter"),
        ('register(Operation("Bad-Name", flag, apply))', "must match"),
        ('register(Operation("tint", flag, lambda image, value: image))', "apply must be a module-level function"),
        ('register("tint")', "not a mediasrv Operation"),
        ('register(Operation("tint", 3, apply))', "parse is not callable"),
        ('raise RuntimeError("boom")', "mediasrv_register_transforms failed: RuntimeError('boom')"),
    ],
)
def test_registration_mistakes_stop_start_up(plugin_dir: Path, registration: str, message: str) -> None:
    name = write_plugin(
        plugin_dir,
        f"""
        def apply(image, value):
            return image

        @hookimpl
        def mediasrv_register_transforms(register):
            {registration}
        """,
    )
    with pytest.raises(PluginError) as caught:
        operations_of(plugin_dir, name)
    assert str(caught.value).startswith(f"plugin '{name}': ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("preset", "message"),
    [
        ('width = 0', "transforms.presets.bad.width: must be a whole number"),
        ('fit = "squash"', "transforms.presets.bad.fit: must be one of"),
        ('colour = "red"', "transforms.presets.bad.colour: unknown transform parameter"),
        ('preset = "thumb"', "transforms.presets.bad.preset: a preset cannot name another preset"),
    ],
)
def test_a_bad_preset_stops_start_up(tmp_path: Path, preset: str, message: str) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(f"[transforms.presets.bad]\n{preset}\n")
    with pytest.raises(ConfigError) as caught:
        load_configuration(path)
    assert str(caught.value).startswith(f"{path}: {message}")


def test_a_preset_may_use_a_plugin_operation(plugin_dir: Path) -> None:
    name = write_plugin(
        plugin_dir,
        """
        def tint(image, amount):
            return image

        @hookimpl
        def mediasrv_register_transforms(register):
            register(Operation("tint", Number(0, 1), tint))
        """,
    )
    path = plugin_dir / "settings.toml"
    path.write_text(f'plugins = ["{name}"]\n[transforms.presets.warm]\nwidth = 100\ntint = 0.5\n')
    configuration = load_configuration(path)
    assert set(configuration.operations) == {"blur", "sharpen", "tint"}
