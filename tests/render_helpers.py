"""Module-level functions for the render pool's tests: they run in its worker processes, which
import this module by name (tests/ is on the sys.path the workers inherit)."""

from __future__ import annotations

import os
import time

from mediasrv.errors import UnprocessableImage


def worker_pid() -> int:
    return os.getpid()


def echo(value: object) -> object:
    return value


def sleep_then(seconds: float, value: object) -> object:
    time.sleep(seconds)
    return value


def refuse() -> None:
    raise UnprocessableImage("not an image, said the worker")


def crash() -> None:
    raise ValueError("a bug in a render function")
