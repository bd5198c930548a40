"""make test installs the real components it needs where it can; in CI it always can."""

from __future__ import annotations

import os
import shutil

import pytest

from components import find_binary


@pytest.mark.parametrize("names", [("nginx",), ("chromium", "chromium-browser")])
def test_components_installed_where_apt_can(names: tuple[str, ...]) -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("not root with apt-get: tests/install-components.sh cannot install components here")
    assert find_binary(*names) is not None, f"{names[0]} missing: tests/install-components.sh should have installed it"
