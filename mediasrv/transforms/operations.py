"""Transform operations: a named query parameter and a function over the engine's image.

Plugins register them through ``mediasrv_register_transforms``; the built-in ``blur`` and
``sharpen`` are registered the same way, by this module (entry point ``transforms``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mediasrv.hookspecs import hookimpl

if TYPE_CHECKING:
    import pyvips

Apply = Callable[["pyvips.Image", Any], "pyvips.Image"]
Parse = Callable[[str], Any]


@dataclass(frozen=True)
class Operation:
    """One transform parameter of a plugin.

    ``name`` is the query parameter. ``parse`` turns its text into a value, raising
    ValueError with a message for the client (a 400 naming the parameter). ``apply`` runs in a
    render worker process, on the image after it was resized (sRGB, 8 bits per band, alpha
    straight) and returns the new image; it must be a module-level function, because it is sent
    to the worker by reference. Operations run in ``order``, then by name, whatever the query's
    order.
    """

    name: str
    parse: Parse
    apply: Apply
    description: str = ""
    order: int = 100


@dataclass(frozen=True)
class Number:
    """A value parser: a decimal number in ``minimum``..``maximum``."""

    minimum: float
    maximum: float

    def __call__(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"must be a number from {self.minimum:g} to {self.maximum:g}") from None
        if not math.isfinite(value) or not self.minimum <= value <= self.maximum or not _plain_number(text):
            raise ValueError(f"must be a number from {self.minimum:g} to {self.maximum:g}")
        return value


@dataclass(frozen=True)
class Integer:
    """A value parser: a whole number (digits only) in ``minimum``..``maximum``."""

    minimum: int
    maximum: int

    def __call__(self, text: str) -> int:
        if not (text.isascii() and text.isdigit()) or len(text) > 9 or not self.minimum <= int(text) <= self.maximum:
            raise ValueError(f"must be a whole number from {self.minimum} to {self.maximum}")
        return int(text)


@dataclass(frozen=True)
class Choice:
    """A value parser: one of ``values``."""

    values: tuple[str, ...] = field(default=())

    def __call__(self, text: str) -> str:
        if text not in self.values:
            raise ValueError(f"must be one of {', '.join(self.values)}")
        return text


def flag(text: str) -> bool:
    """A value parser: ``0`` or ``1``."""
    if text not in ("0", "1"):
        raise ValueError("must be 0 or 1")
    return text == "1"


def _plain_number(text: str) -> bool:
    """Digits with at most one decimal point: no sign, exponent, spaces or "nan"."""
    return text.isascii() and text.replace(".", "", 1).isdigit()


SIGMA = Number(0.3, 100)


def blur(image: pyvips.Image, sigma: float) -> pyvips.Image:
    """Gaussian blur of standard deviation ``sigma`` pixels."""
    return image.gaussblur(sigma)


def sharpen(image: pyvips.Image, sigma: float) -> pyvips.Image:
    """Unsharp mask of radius ``sigma`` pixels, on lightness only (no colour fringes)."""
    return image.sharpen(sigma=sigma)


BUILTIN_OPERATIONS = (
    Operation("blur", SIGMA, blur, "gaussian blur, sigma 0.3..100", order=10),
    Operation("sharpen", SIGMA, sharpen, "sharpen, sigma 0.3..100", order=20),
)


@hookimpl
def mediasrv_register_transforms(register: Callable[[Operation], None]) -> None:
    """The built-in operations, registered as any plugin's are."""
    for operation in BUILTIN_OPERATIONS:
        register(operation)
