"""Transform parameters: validation (400 naming the parameter), canonical form, presets, and
format negotiation from Accept."""

from __future__ import annotations

import pytest

from mediasrv.errors import InvalidTransform
from mediasrv.transforms.negotiation import accepted_token, choose_format, format_token
from mediasrv.transforms.operations import BUILTIN_OPERATIONS
from mediasrv.transforms.options import TransformOptions, parse_transform_query
from mediasrv.transforms.settings import TransformSettings

OPERATIONS = {operation.name: operation for operation in BUILTIN_OPERATIONS}
SETTINGS = TransformSettings(
    presets={
        "thumb": {"width": 200, "height": 200, "fit": "cover", "format": "auto"},
        "soft": {"width": 300, "blur": 1.5},
    }
)


def parse(query: str, settings: TransformSettings = SETTINGS) -> TransformOptions | None:
    items = [tuple(part.split("=", 1)) if "=" in part else (part, "") for part in query.split("&") if part]
    return parse_transform_query(items, settings, OPERATIONS)  # type: ignore[arg-type]


@pytest.mark.parametrize("query", ["", "v=3", "sig=abc&exp=1", "info=json", "v=3&fields=width"])
def test_no_transform_parameter_serves_the_original(query: str) -> None:
    assert parse(query) is None


def test_canonical_form_is_sorted_without_defaults() -> None:
    options = parse("width=400&format=webp&fit=contain&gravity=center&enlarge=0&sig=x")
    assert options is not None
    assert options.canonical == "format=webp&width=400"
    assert options.needs_signature


def test_equal_renderings_have_one_canonical_form() -> None:
    first, second = parse("width=200&dpr=2&blur=1.50"), parse("blur=1.5&width=400")
    assert first is not None and second is not None
    assert first.canonical == second.canonical == "blur=1.5&width=400"


@pytest.mark.parametrize(
    ("query", "parameter", "message"),
    [
        ("width=400&colour=red", "colour", "unknown transform parameter"),
        ("width=400&width=500", "width", "given more than once"),
        ("width=0", "width", "from 1 to 4096"),
        ("width=4097", "width", "from 1 to 4096"),
        ("width=-5", "width", "whole number"),
        ("width=12.5", "width", "whole number"),
        ("width=", "width", "whole number"),
        ("width=1e3", "width", "whole number"),
        ("width=3000&dpr=2", "width", "over max_dimension 4096"),
        ("height=abc", "height", "whole number"),
        ("fit=stretch", "fit", "contain, cover, fill"),
        ("width=1&gravity=up", "gravity", "center"),
        ("width=1&enlarge=yes", "enlarge", "0 or 1"),
        ("format=bmp", "format", "auto, jpeg"),
        ("width=1&quality=0", "quality", "from 1 to 100"),
        ("width=1&quality=101", "quality", "from 1 to 100"),
        ("width=1&dpr=5", "dpr", "from 1 to 4"),
        ("width=1&dpr=nan", "dpr", "from 1 to 4"),
        ("width=1&blur=0.1", "blur", "from 0.3 to 100"),
        ("width=1&sharpen=inf", "sharpen", "from 0.3 to 100"),
        ("preset=missing", "preset", "no preset named 'missing'"),
        ("preset=thumb&width=10", "width", "cannot be combined with preset"),
        ("preset=thumb&preset=soft", "preset", "given more than once"),
    ],
)
def test_bad_parameters_are_400_naming_them(query: str, parameter: str, message: str) -> None:
    with pytest.raises(InvalidTransform) as caught:
        parse(query)
    assert caught.value.status == 400
    assert caught.value.parameter == parameter
    assert caught.value.detail.startswith(f"{parameter}: ")
    assert message in caught.value.detail


def test_preset_alone_or_with_dpr_and_format_needs_no_signature() -> None:
    for query in ("preset=thumb", "preset=thumb&dpr=2", "preset=thumb&format=webp&dpr=1.5&sig=whatever"):
        options = parse(query)
        assert options is not None
        assert not options.needs_signature, query
    options = parse("preset=thumb&dpr=2&format=webp")
    assert options is not None
    assert options.canonical == "fit=cover&format=webp&height=400&width=400"


def test_preset_with_an_operation() -> None:
    options = parse("preset=soft")
    assert options is not None
    assert options.operations == (("blur", 1.5),)


@pytest.mark.parametrize(
    ("accept", "token"),
    [
        ("image/avif,image/webp,image/apng,image/*,*/*;q=0.8", "avif"),  # Chromium
        ("image/webp,*/*", "webp"),
        ("image/avif;q=0.5,image/webp;q=0.9", "webp"),
        ("image/avif;q=0.9,image/webp;q=0.9", "avif"),
        ("image/avif;q=0,image/webp", "webp"),
        ("IMAGE/AVIF", "avif"),
        ("*/*", "legacy"),
        ("image/*", "legacy"),
        ("image/webp;q=0", "legacy"),
        ("image/webp;q=abc", "legacy"),
        ("", "legacy"),
        (None, "legacy"),
    ],
)
def test_accept_negotiation(accept: str | None, token: str) -> None:
    assert accepted_token(accept) == token


def test_format_token() -> None:
    auto, explicit, source = parse("width=1&format=auto"), parse("width=1&format=png"), parse("width=1")
    assert auto is not None and explicit is not None and source is not None
    assert format_token(auto, "image/webp") == "webp"
    assert format_token(explicit, "image/avif") == "png"
    assert format_token(source, "image/avif") == "source"


@pytest.mark.parametrize(
    ("token", "source", "alpha", "animated", "output"),
    [
        ("legacy", "jpeg", False, False, "jpeg"),
        ("legacy", "png", True, False, "png"),
        ("source", "gif", False, False, "gif"),
        ("source", "legacy", True, False, "png"),  # an SVG source
        ("source", "legacy", False, False, "jpeg"),  # a HEIC source
        ("avif", "gif", False, True, "webp"),
        ("legacy", "gif", False, True, "gif"),
        ("webp", "png", True, False, "webp"),
    ],
)
def test_choose_format(token: str, source: str, alpha: bool, animated: bool, output: str) -> None:
    assert choose_format(token, source, alpha, animated) == output
