"""The real components some tests drive, found on this machine or skipped with the reason.

``make test`` installs them first (tests/install-components.sh) when it runs as root with apt.
"""

from __future__ import annotations

import os
import shutil

import pytest

# Every headless Chromium a test starts runs with these (and a fresh --user-data-dir): without
# the background-networking ones it tries the closed network, many connections at a time.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

SYSTEM_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/usr/bin"])


def find_binary(*names: str) -> str | None:
    """The first of ``names`` on PATH (or in the sbin folders a user's PATH may miss)."""
    for name in names:
        found = shutil.which(name, path=SYSTEM_PATH)
        if found is not None:
            return found
    return None


def require_binary(*names: str) -> str:
    """The binary's path; skips the test, saying why, when none of ``names`` is installed."""
    found = find_binary(*names)
    if found is None:
        pytest.skip(f"{names[0]} is not installed and tests/install-components.sh could not install it")
    return found


@pytest.fixture(scope="session")
def nginx_binary() -> str:
    """Debian's nginx, for the tests that put it in front of mediasrv."""
    return require_binary("nginx")


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    """Debian's headless Chromium, for the tests that look at pages as a browser does."""
    return require_binary("chromium", "chromium-browser")
