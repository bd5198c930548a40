"""``mediasrv new-backend NAME``: writes a plugin distribution that installs and runs its tests
at once, failing only where the author has code to write."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from string import Template

from mediasrv.settings import ConfigError

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


def backend_names(kind: str) -> dict[str, str]:
    """The names a backend plugin of ``kind`` uses: distribution, package, classes, kind."""
    if not re.fullmatch(NAME_PATTERN, kind):
        raise ConfigError(f"backend name {kind!r} must match {NAME_PATTERN} (it becomes a Python package name)")
    if kind in BUILT_IN_KINDS:
        raise ConfigError(f"backend name {kind!r} is a built-in kind; choose another")
    camel = "".join(part.capitalize() for part in kind.split("_"))
    from mediasrv import __version__

    return {
        "kind": kind,
        "distribution": f"mediasrv-{kind.replace('_', '-')}",
        "package": f"mediasrv_{kind}",
        "class_name": f"{camel}Backend",
        "settings_name": f"{camel}Settings",
        "mediasrv_version": __version__,
    }


def write_backend(kind: str, parent: Path) -> Path:
    """Write the plugin distribution for ``kind`` into ``parent``; its folder. ConfigError if
    the name is invalid or the folder exists (nothing is overwritten)."""
    names = backend_names(kind)
    target = parent / names["distribution"]
    if target.exists():
        raise ConfigError(f"{target} already exists; not overwriting it")
    templates = files(__name__).joinpath("backend")
    for relative, template in BACKEND_FILES.items():
        path = target / relative.format(**names)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = Template(templates.joinpath(template).read_text()).substitute(names) if template else ""
        path.write_text(text)
    return target
