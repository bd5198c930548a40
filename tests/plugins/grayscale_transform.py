"""A transform plugin: ``?grayscale=1`` renders the image in shades of grey.

Loaded through settings' ``plugins = ["grayscale_transform"]``, as a user's own plugin is;
docs/writing-a-transform.md quotes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mediasrv import Operation, flag, hookimpl


def grayscale(image: Any, enabled: bool) -> Any:
    """Luminance only; an alpha band is kept."""
    if not enabled:
        return image
    return image.colourspace("b-w")


@hookimpl
def mediasrv_register_transforms(register: Callable[[Operation], None]) -> None:
    register(Operation("grayscale", flag, grayscale, "1: shades of grey"))
