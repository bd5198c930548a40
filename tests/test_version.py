"""``mediasrv.__version__`` comes from the installed distribution, and ``import mediasrv`` still
works from a checkout that is not installed (a source tree on PYTHONPATH)."""

from __future__ import annotations

import importlib
import importlib.metadata

import pytest

import mediasrv


def test_version_is_the_installed_distributions() -> None:
    assert mediasrv.__version__ == importlib.metadata.version("mediasrv")


def test_import_without_installed_metadata_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    try:
        assert importlib.reload(mediasrv).__version__ == "0+unknown"
    finally:
        monkeypatch.undo()
        importlib.reload(mediasrv)
    assert mediasrv.__version__ == importlib.metadata.version("mediasrv")
