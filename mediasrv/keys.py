"""Checks on object keys common to every backend, made before any backend sees the key."""

from __future__ import annotations

from mediasrv.errors import InvalidKey
from mediasrv.grammar import has_control_character

MAX_KEY_BYTES = 1024  # S3's limit; longer keys name nothing anywhere


def validate_key(key: str) -> str:
    """Return ``key`` if it is a plain relative path, else raise InvalidKey.

    Refused: empty keys, C0 and C1 control characters (NUL included), backslashes, and empty,
    ``.`` or ``..`` segments, which also covers absolute paths and ``scheme://host`` URLs.
    The key arrives percent-decoded, so ``%2e%2e`` and ``%2f`` are caught here too.
    """
    if not key:
        raise InvalidKey("empty key")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKey(f"key longer than {MAX_KEY_BYTES} bytes")
    if has_control_character(key):
        raise InvalidKey("control character in key")
    if "\\" in key:
        raise InvalidKey("backslash in key")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKey("empty, '.' or '..' path segment in key")
    return key
