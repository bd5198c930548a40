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


def redacted_settings(settings: BaseModel) -> dict[str, Any]:
    """``settings`` as JSON-ready data, with every secret masked: SecretStr fields, upstream
    ``headers`` values, keys that look like secrets, and passwords inside URLs."""
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
        return _redact_url_password(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)  # paths, URLs, enums: their text


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
