"""``?info=json[&fields=a,b]``: what a front end needs before an image arrives (its size and a
placeholder), answered as a variant like any rendered one (derived ETag, 304, cacheable).

This module is light (the server process imports it); the pixels are read in a render worker
by ``render_info``, which imports ``describe`` (libvips and the hash libraries) there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mediasrv.errors import InvalidTransform

if TYPE_CHECKING:
    from mediasrv.transforms.engine import RenderPlan, RenderResult

INFO_FIELDS: tuple[str, ...] = (
    "width",
    "height",
    "format",
    "orientation",
    "has_alpha",
    "pages",
    "bytes",
    "dominant_color",
    "blurhash",
    "thumbhash",
    "lqip",
)
PLACEHOLDER_FIELDS = frozenset({"dominant_color", "blurhash", "thumbhash", "lqip"})
DEFAULT_BLURHASH_COMPONENTS = (4, 3)
CONTENT_TYPE = "application/json"

InfoDocument = dict[str, Any]


@dataclass(frozen=True)
class InfoRequest:
    """What ``?info=json`` asks for: the fields (all, unless ``fields=`` names some) in the
    order of INFO_FIELDS, the BlurHash's components across and down (1 to 9 each), and whether
    it is about the rendered variant (transform parameters given) or the source itself."""

    fields: tuple[str, ...] = INFO_FIELDS
    blurhash_components: tuple[int, int] = DEFAULT_BLURHASH_COMPONENTS
    of_variant: bool = False

    @property
    def wants_placeholders(self) -> bool:
        return not PLACEHOLDER_FIELDS.isdisjoint(self.fields)

    @property
    def canonical(self) -> str:
        """The document asked for as text, for the derived ETag and the access log."""
        text = "info=json" if self.fields == INFO_FIELDS else f"info=json&fields={','.join(self.fields)}"
        if "blurhash" in self.fields:
            text += "&blurhash={}x{}".format(*self.blurhash_components)
        return text


def parse_info_query(
    query_items: Iterable[tuple[str, str]], blurhash_components: tuple[int, int] = DEFAULT_BLURHASH_COMPONENTS
) -> InfoRequest | None:
    """The info a query asks for, or None without ``info``; InvalidTransform (400) naming
    ``info`` or ``fields`` when either is repeated or has a value it cannot have."""
    given: dict[str, str] = {}
    for name, value in query_items:
        if name in ("info", "fields"):
            if name in given:
                raise InvalidTransform(name, "given more than once")
            given[name] = value
    if "info" not in given:
        if "fields" in given:
            raise InvalidTransform("fields", "only applies with info=json")
        return None
    if given["info"] != "json":
        raise InvalidTransform("info", "must be json")
    if "fields" not in given:
        return InfoRequest(blurhash_components=blurhash_components)
    return InfoRequest(_fields(given["fields"]), blurhash_components)


def _fields(text: str) -> tuple[str, ...]:
    names = {name.strip() for name in text.split(",")}
    unknown = sorted(names - set(INFO_FIELDS))
    if unknown:
        raise InvalidTransform("fields", f"unknown field {unknown[0]!r} (known: {', '.join(INFO_FIELDS)})")
    return tuple(name for name in INFO_FIELDS if name in names)


def render_info(source: bytes, plan: RenderPlan) -> RenderResult:
    """``plan.info``'s document as a rendered variant (JSON bytes), in a render worker: about
    the source itself, or about what ``plan`` renders from it when ``plan.info.of_variant``."""
    from mediasrv.transforms import describe, engine

    engine.configure()
    request = plan.info
    if request is None:
        raise ValueError("render_info needs a plan with an info request")
    started = time.perf_counter()
    if request.of_variant:
        rendered = engine.render(source, plan)
        # The variant has no EXIF orientation left and is within max_dimension: read it whole.
        document = describe.image_info(rendered.body, request, max_pixels=rendered.width * rendered.height)
    else:
        document = describe.image_info(source, request, plan.max_source_pixels)
    body = json.dumps(document, separators=(",", ":")).encode()
    return engine.RenderResult(
        body=body,
        content_type=CONTENT_TYPE,
        format="json",
        width=int(document.get("width", 0)),
        height=int(document.get("height", 0)),
        transform_seconds=time.perf_counter() - started,
    )
