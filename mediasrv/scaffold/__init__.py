"""``mediasrv new-backend NAME`` and ``mediasrv new-transform NAME``: write a plugin distribution
that installs and runs its tests at once, failing only where the author has code to write."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from string import Template

from mediasrv.plugins import OPERATION_NAME_PATTERN
from mediasrv.settings import ConfigError
from mediasrv.transforms.options import CORE_PARAMETERS, RESERVED_PARAMETERS

NAME_PATTERN = r"[a-z][a-z0-9_]*"
BUILT_IN_KINDS = ("local", "s3", "http")

# Each file the backend scaffold writes, and the template it comes from.
BACKEND_FILES = {
    "pyproject.toml": "pyproject.toml.tmpl",
    "README.md": "README.md.tmpl",
    "{package}/__init__.py": "__init__.py.tmpl",
    "{package}/backend.py": "backend.py.tmpl",
    "{package}/py.typed": None,
    "tests/test_{kind}_backend.py": "test_backend.py.tmpl",
}

# Each file the transform scaffold writes, and the template it comes from.
TRANSFORM_FILES = {
    "pyproject.toml": "pyproject.toml.tmpl",
    "README.md": "README.md.tmpl",
    "{package}/__init__.py": "__init__.py.tmpl",
    "{package}/operation.py": "operation.py.tmpl",
    "{package}/py.typed": None,
    "tests/test_{name}_transform.py": "test_transform.py.tmpl",
}


def backend_names(kind: str) -> dict[str, str]:
    """The names a backend plugin of ``kind`` uses: distribution, package, classes, kind."""
    if not re.fullmatch(NAME_PATTERN, kind):
        raise ConfigError(f"backend name {kind!r} must match {NAME_PATTERN} (it becomes a Python package name)")
    if kind in BUILT_IN_KINDS:
        raise ConfigError(f"backend name {kind!r} is a built-in kind; choose another")
    camel = "".join(part.capitalize() for part in kind.split("_"))
    return {
        "kind": kind,
        "distribution": f"mediasrv-{kind.replace('_', '-')}",
        "package": f"mediasrv_{kind}",
        "class_name": f"{camel}Backend",
        "settings_name": f"{camel}Settings",
        "mediasrv_version": _version(),
    }


def transform_names(name: str) -> dict[str, str]:
    """The names a transform plugin of operation ``name`` uses: distribution, package, name."""
    if not re.fullmatch(OPERATION_NAME_PATTERN, name):
        raise ConfigError(f"transform name {name!r} must match {OPERATION_NAME_PATTERN} (it is the query parameter)")
    if name in CORE_PARAMETERS or name in RESERVED_PARAMETERS:
        raise ConfigError(f"transform name {name!r} is a built-in or reserved parameter; choose another")
    return {
        "name": name,
        "distribution": f"mediasrv-{name.replace('_', '-')}",
        "package": f"mediasrv_{name}",
        "mediasrv_version": _version(),
    }


def _version() -> str:
    from mediasrv import __version__

    return __version__


def write_backend(kind: str, parent: Path) -> Path:
    """Write the plugin distribution for ``kind`` into ``parent``; its folder. ConfigError if
    the name is invalid or the folder exists (nothing is overwritten)."""
    return _write(backend_names(kind), "backend", BACKEND_FILES, parent)


def write_transform(name: str, parent: Path) -> Path:
    """Write the plugin distribution for operation ``name`` into ``parent``; its folder.
    ConfigError if the name is invalid or the folder exists (nothing is overwritten)."""
    return _write(transform_names(name), "transform", TRANSFORM_FILES, parent)


def _write(names: dict[str, str], templates_folder: str, plan: dict[str, str | None], parent: Path) -> Path:
    target = parent / names["distribution"]
    if target.exists():
        raise ConfigError(f"{target} already exists; not overwriting it")
    templates = files(__name__).joinpath(templates_folder)
    for relative, template in plan.items():
        path = target / relative.format(**names)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = Template(templates.joinpath(template).read_text()).substitute(names) if template else ""
        path.write_text(text)
    return target
