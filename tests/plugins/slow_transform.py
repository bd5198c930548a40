"""A test-only transform: ``?delay=SECONDS`` holds its render process that long, so the tests can
fill the render queue, overrun the render timeout and kill a busy render worker on cue."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mediasrv import Number, Operation, hookimpl


def delay(image: Any, seconds: float) -> Any:
    time.sleep(seconds)
    return image


@hookimpl
def mediasrv_register_transforms(register: Callable[[Operation], None]) -> None:
    register(Operation("delay", Number(0, 60), delay, "sleep SECONDS in the render process"))
