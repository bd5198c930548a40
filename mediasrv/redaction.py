"""Backend settings as an admin may see them: every secret replaced by a mask."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, SecretBytes, SecretStr

MASK = "**********"

# Keys whose values are secrets whatever their type; "headers" because upstream headers
# carry API tokens and cookies.
_SECRET_KEY = re.compile(r"secret|token|passw|credential|auth|api_?key|access_?key|private|cookie|session|signature")
_ALWAYS_SECRET_MAPPINGS = frozenset({"headers"})
_URL_KEY_SUFFIXES = ("url", "uri", "path", "endpoint")


def redacted_settings(settings: BaseModel) -> dict[str, Any]:
    """``settings`` as JSON-ready data, with every secret masked: SecretStr fields, upstream
    ``headers`` values, keys that look like secrets, and passwords and query values inside
    URLs and URL paths."""
    data = settings.model_dump(mode="python")
    return {key: _redact(key, value) for key, value in data.items()}


def _redact(key: str, value: Any) -> Any:
    if isinstance(value, SecretStr | SecretBytes):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, dict):
        if key.lower() in _ALWAYS_SECRET_MAPPINGS:
            return {name: MASK for name in value}
        return {name: _redact(str(name), item) for name, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact(key, item) for item in value]
    if isinstance(value, str):
        if value and _SECRET_KEY.search(key.lower()):
            return MASK
        if _is_url_like(key, value):
            return _redact_query_values(_redact_url_password(value))
        return value
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)  # paths, URLs, enums: their text


def _is_url_like(key: str, value: str) -> bool:
    """A URL, or a path a URL is made of (``health_path = "/health?token=..."``)."""
    return "://" in value or value.startswith("/") or key.lower().endswith(_URL_KEY_SUFFIXES)


def _redact_query_values(value: str) -> str:
    """Every query parameter's value masked (tokens are often passed that way); names kept."""
    base, mark, rest = value.partition("?")
    if not mark:
        return value
    query, hash_mark, fragment = rest.partition("#")
    masked = "&".join(_mask_parameter(parameter) for parameter in query.split("&"))
    return f"{base}?{masked}{hash_mark}{MASK if fragment else ''}"


def _mask_parameter(parameter: str) -> str:
    name, equals, value = parameter.partition("=")
    return f"{name}={MASK}" if equals and value else parameter


def _redact_url_password(value: str) -> str:
    """``scheme://user:pass@host/...`` with the password masked; anything else unchanged."""
    if "@" not in value or "://" not in value:
        return value
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return MASK  # unparseable but URL-like and holding an "@": don't risk it
    if not password:
        return value
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{netloc[1]}"))
