"""The Content-Type mediasrv sends, and whether it needs ``Content-Security-Policy: sandbox``.

A backend's content type is metadata anyone who can write to the bucket controls. Browsers
read a ``Content-Type`` their own way (WHATWG "extract a MIME type" takes the last member of
a comma-separated list), so a value like ``text/plain, text/html`` would be judged passive
here and rendered as HTML there. Every backend value is therefore rebuilt as exactly one
``type/subtype[; name=value]...`` or replaced by ``application/octet-stream``, and the
sandbox decision is taken on that rebuilt value with an allow-list: only types known to run
no script when opened skip the sandbox (``text/xsl``, ``multipart/x-mixed-replace`` and
``message/rfc822`` all can). Passive media must not be sandboxed: a sandboxed video opened
in a tab has origin ``null`` and fails to load.
"""

from __future__ import annotations

DEFAULT_CONTENT_TYPE = "application/octet-stream"
NOSNIFF_HEADER = (b"x-content-type-options", b"nosniff")  # on every response under /media/
MAX_LENGTH = 1024  # longer values are refused whole: no real type needs that much

# RFC 9110 tchar.
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_QUOTED_TEXT = frozenset(chr(code) for code in (0x09, *range(0x20, 0x7F), *range(0x80, 0x100))) - {'"', "\\"}
_QUOTED_PAIR = frozenset(chr(code) for code in (0x09, *range(0x20, 0x7F), *range(0x80, 0x100)))
_WHITESPACE = " \t"

PASSIVE_TOP_LEVEL_TYPES = frozenset({"image", "audio", "video", "font"})
PASSIVE_TYPES = frozenset(
    {
        "text/plain",
        "text/css",
        "text/csv",
        "text/vtt",
        "text/javascript",
        "application/javascript",
        "application/json",
        "application/pdf",
        "application/octet-stream",
        "application/wasm",
        "application/zip",
        "application/gzip",
        "application/x-gzip",
        "application/x-tar",
        "application/x-bzip2",
        "application/x-xz",
        "application/x-7z-compressed",
        "application/zstd",
        "application/mp4",
        "application/ogg",
        "application/vnd.apple.mpegurl",
        "application/x-mpegurl",
        "application/font-woff",
        "application/vnd.ms-fontobject",
    }
)


def normalise_content_type(value: str) -> str:
    """``value`` as one valid ``type/subtype[; name=value]...`` (type, subtype and parameter
    names in lower case), else ``application/octet-stream``."""
    if len(value) > MAX_LENGTH:
        return DEFAULT_CONTENT_TYPE
    parsed = _parse(value)
    return parsed if parsed is not None else DEFAULT_CONTENT_TYPE


def needs_sandbox(content_type: str) -> bool:
    """Whether a response of this (normalised) type gets ``Content-Security-Policy: sandbox``:
    every type but the known passive ones (images other than SVG, audio, video, fonts,
    plain text, CSS, JSON, PDF, archives...)."""
    essence = content_type.split(";", 1)[0].strip().lower()
    if essence.endswith("+xml"):  # SVG and every other XML can carry script
        return True
    if essence in PASSIVE_TYPES or essence.endswith("+json"):
        return False
    return essence.split("/", 1)[0] not in PASSIVE_TOP_LEVEL_TYPES


def _parse(value: str) -> str | None:
    """One linear pass over ``media-type = type "/" subtype *( OWS ";" OWS [parameter] )``."""
    text = value.strip(_WHITESPACE)
    position, media_type = _token(text, 0)
    if not media_type or position >= len(text) or text[position] != "/":
        return None
    position, subtype = _token(text, position + 1)
    if not subtype:
        return None
    parts = [f"{media_type.lower()}/{subtype.lower()}"]
    while position < len(text):
        position = _skip_whitespace(text, position)
        if position >= len(text) or text[position] != ";":
            return None
        position = _skip_whitespace(text, position + 1)
        if position >= len(text) or text[position] == ";":
            continue  # an empty parameter is allowed
        position, name = _token(text, position)
        if not name or position >= len(text) or text[position] != "=":
            return None
        position, parameter_value = _parameter_value(text, position + 1)
        if parameter_value is None:
            return None
        parts.append(f"{name.lower()}={parameter_value}")
    return "; ".join(parts)


def _token(text: str, start: int) -> tuple[int, str]:
    end = start
    while end < len(text) and text[end] in _TOKEN:
        end += 1
    return end, text[start:end]


def _skip_whitespace(text: str, position: int) -> int:
    while position < len(text) and text[position] in _WHITESPACE:
        position += 1
    return position


def _parameter_value(text: str, start: int) -> tuple[int, str | None]:
    """A token or a quoted-string (kept quoted) at ``start``."""
    if start < len(text) and text[start] == '"':
        position = start + 1
        while position < len(text):
            character = text[position]
            if character == '"':
                return position + 1, text[start : position + 1]
            if character == "\\":
                position += 1
                if position >= len(text) or text[position] not in _QUOTED_PAIR:
                    return position, None
            elif character not in _QUOTED_TEXT:
                return position, None
            position += 1
        return position, None  # unterminated
    end, token = _token(text, start)
    return end, token or None
