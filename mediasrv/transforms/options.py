"""Transform parameters of a media request, validated into one canonical, immutable options object."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mediasrv import signing
from mediasrv.errors import InvalidTransform
from mediasrv.transforms.operations import Choice, Integer, Number, Operation, flag
from mediasrv.transforms.settings import PresetValue, TransformSettings

FITS = ("contain", "cover", "fill")
GRAVITIES = (
    "center", "north", "south", "east", "west", "northeast", "northwest", "southeast", "southwest", "attention",
    "entropy",
)  # fmt: skip
FORMATS = ("auto", "jpeg", "png", "webp", "avif", "gif")
PRESET_COMPANIONS = frozenset({"preset", "dpr", "format"})

CORE_PARAMETERS = frozenset({"width", "height", "fit", "gravity", "enlarge", "format", "quality", "dpr", "preset"})
RESERVED_PARAMETERS = signing.RESERVED_PARAMETERS | {"info", "fields"}
"""Never transform parameters: the signature's (``sig``, ``exp``), and ``?info=json&fields=...``."""

_fit = Choice(FITS)
_gravity = Choice(GRAVITIES)
_format = Choice(FORMATS)
_quality = Integer(1, 100)
_dpr = Number(1, 4)


@dataclass(frozen=True)
class TransformOptions:
    """What to render, resolved: a preset expanded, ``dpr`` folded into width and height.

    ``format`` None keeps the source's format; ``"auto"`` negotiates it from ``Accept``.
    ``operations`` holds the plugin operations' (name, value) in the order they run.
    ``needs_signature`` is False only for a preset alone or with ``dpr``/``format``.
    """

    width: int | None = None
    height: int | None = None
    fit: str = "contain"
    gravity: str = "center"
    enlarge: bool = False
    format: str | None = None
    quality: int | None = None
    operations: tuple[tuple[str, Any], ...] = ()
    preset: str | None = None
    needs_signature: bool = True

    @property
    def canonical(self) -> str:
        """The rendering these options ask for as ``k=v&...``, sorted, defaults left out: two
        requests that render the same bytes have the same canonical form."""
        fields: dict[str, Any] = {
            "width": self.width,
            "height": self.height,
            "fit": None if self.fit == "contain" else self.fit,
            "gravity": None if self.gravity == "center" else self.gravity,
            "enlarge": True if self.enlarge else None,
            "format": self.format,
            "quality": self.quality,
            **dict(self.operations),
        }
        return "&".join(f"{name}={value_text(value)}" for name, value in sorted(fields.items()) if value is not None)


def value_text(value: Any) -> str:
    """A parsed value as canonical text: ``1.5`` not ``1.50``, ``1`` for True."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def parse_transform_query(
    query_items: Iterable[tuple[str, str]], settings: TransformSettings, operations: Mapping[str, Operation]
) -> TransformOptions | None:
    """The transform a query asks for, or None when it names no transform parameter (serve the
    original bytes: a cache buster such as ``?v=3`` stays harmless).

    Once one transform parameter is present, every other non-reserved one must be known and
    given once, with a valid value; else InvalidTransform (400) naming it.
    """
    items = [(name, value) for name, value in query_items if name not in RESERVED_PARAMETERS]
    if not any(name in CORE_PARAMETERS or name in operations for name, _ in items):
        return None
    given: dict[str, str] = {}
    for name, value in items:
        if name not in CORE_PARAMETERS and name not in operations:
            raise InvalidTransform(name, "unknown transform parameter")
        if name in given:
            raise InvalidTransform(name, "given more than once")
        given[name] = value
    if "preset" not in given:
        return build_options(given, settings, operations)
    name = given["preset"]
    preset = settings.presets.get(name)
    if preset is None:
        raise InvalidTransform("preset", f"no preset named {name!r}")
    extra = sorted(set(given) - PRESET_COMPANIONS)
    if extra:
        raise InvalidTransform(extra[0], "cannot be combined with preset (only dpr and format can)")
    values: dict[str, str] = {**preset_texts(preset), **{key: given[key] for key in ("dpr", "format") if key in given}}
    return build_options(values, settings, operations, preset=name)


def preset_texts(preset: Mapping[str, PresetValue]) -> dict[str, str]:
    """A preset's TOML values as the query text they stand for."""
    return {name: value_text(value) for name, value in preset.items()}


def build_options(
    values: Mapping[str, str],
    settings: TransformSettings,
    operations: Mapping[str, Operation],
    preset: str | None = None,
) -> TransformOptions:
    """Validate each parameter's text; InvalidTransform names the first bad one."""
    if "preset" in values and preset is not None:
        raise InvalidTransform("preset", "a preset cannot name another preset")
    dpr = _parse(values, "dpr", _dpr, 1.0)
    width, height = (_dimension(values, name, dpr, settings.max_dimension) for name in ("width", "height"))
    custom = sorted(
        (operation for name, operation in operations.items() if name in values),
        key=lambda operation: (operation.order, operation.name),
    )
    return TransformOptions(
        width=width,
        height=height,
        fit=_parse(values, "fit", _fit, "contain"),
        gravity=_parse(values, "gravity", _gravity, "center"),
        enlarge=_parse(values, "enlarge", flag, False),
        format=_parse(values, "format", _format, None),
        quality=_parse(values, "quality", _quality, None),
        operations=tuple((op.name, _parse(values, op.name, op.parse, None)) for op in custom),
        preset=preset,
        needs_signature=preset is None,
    )


def _parse(values: Mapping[str, str], name: str, parse: Any, default: Any) -> Any:
    if name not in values:
        return default
    try:
        return parse(values[name])
    except ValueError as exc:
        raise InvalidTransform(name, str(exc) or "invalid value") from None


def _dimension(values: Mapping[str, str], name: str, dpr: float, max_dimension: int) -> int | None:
    size: int | None = _parse(values, name, Integer(1, max_dimension), None)
    if size is None:
        return None
    scaled = round(size * dpr)
    if scaled > max_dimension:
        raise InvalidTransform(name, f"{name} x dpr is {scaled}, over max_dimension {max_dimension}")
    return scaled
