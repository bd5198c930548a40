"""A transform plugin with a bug: ``?explode=1`` raises an exception that is not a MediaError,
carrying a secret in its message, so tests can check that such a render answers 502 and that
nothing of the exception reaches the client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mediasrv import Operation, flag, hookimpl

SECRET = "secret-in-a-failing-transform"


def explode(image: Any, enabled: bool) -> Any:
    if enabled:
        raise RuntimeError(SECRET)
    return image


@hookimpl
def mediasrv_register_transforms(register: Callable[[Operation], None]) -> None:
    register(Operation("explode", flag, explode, "1: raise (a test plugin's bug)"))
