"""Signed URLs: the one implementation of the canonical string, signing and verification.

A signed URL carries ``sig`` (by convention its last query parameter) and optionally ``exp``
(Unix seconds; expired means now > exp). ``sig`` is
``base64url_nopad(HMAC-SHA256(key, canonical))`` where ``canonical`` is

    encode_path(percent_decode(path)) + "?" + "&".join(
        name + "=" + value for name, value in sorted(
            (encode(name), encode(value)) for every query parameter except sig))

``encode`` percent-encodes every UTF-8 byte except ``A-Z a-z 0-9 - . _ ~`` as ``%XX`` (upper
case hex), ``encode_path`` the same but keeps ``/``. Query names and values are taken decoded
(``+`` is a space); the pairs sort by encoded name, then encoded value (ASCII). The README
spells out the rule with a worked example; everything here must keep to it, because other
languages sign URLs that this module verifies.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote_to_bytes, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from mediasrv.errors import SignatureRejected

if TYPE_CHECKING:
    from starlette.requests import Request

SIGNATURE_PARAMETER = "sig"
EXPIRY_PARAMETER = "exp"
RESERVED_PARAMETERS = frozenset({SIGNATURE_PARAMETER, EXPIRY_PARAMETER})  # no other feature reads these
MIN_KEY_BYTES = 32

Query = Sequence[tuple[str, str]]

_EXPIRY = re.compile(r"[0-9]{1,20}")


class Verdict(enum.Enum):
    """What ``Signer.verify`` found."""

    VALID = "valid"
    MISSING = "missing"
    INVALID = "invalid"
    EXPIRED = "expired"


_REJECTION_KINDS = {
    Verdict.MISSING: "signature_missing",
    Verdict.INVALID: "signature_invalid",
    Verdict.EXPIRED: "signature_expired",
}


class SigningSettings(BaseModel):
    """``[signing]``: the keys of signed URLs; the first signs, every one verifies."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # the input is the keys

    keys: list[SecretStr] = []

    @field_validator("keys")
    @classmethod
    def _check_key_lengths(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for index, key in enumerate(keys):
            length = len(key.get_secret_value().encode())
            if length < MIN_KEY_BYTES:
                # Name the position and length, never the key.
                raise ValueError(f"key {index} is {length} bytes; signing keys need at least {MIN_KEY_BYTES}")
        return keys

    def signer(self) -> Signer | None:
        """The Signer of these keys, or None when there are none."""
        if not self.keys:
            return None
        return Signer([key.get_secret_value() for key in self.keys])


class Signer:
    """Signs with the first key and verifies with every key, so keys rotate without downtime."""

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if not keys:
            raise ValueError("a Signer needs at least one key")
        self._keys = tuple(key.encode() if isinstance(key, str) else bytes(key) for key in keys)

    def sign(self, url_or_path: str, expires: int | None = None) -> str:
        """``url_or_path`` with ``exp`` (``expires`` seconds from now, when given) and ``sig`` added.

        Any ``sig`` already present is replaced; an ``exp`` already present is kept and signed
        (an absolute expiry), and giving ``expires`` as well is a ValueError.
        """
        parts = urlsplit(url_or_path)
        if not parts.path.startswith("/") and not (parts.netloc and not parts.path):
            raise ValueError(f"sign a URL or a path starting with '/', not {url_or_path!r}")
        query = [(name, value) for name, value in parse_query(parts.query) if name != SIGNATURE_PARAMETER]
        if expires is not None:
            if any(name == EXPIRY_PARAMETER for name, _ in query):
                raise ValueError(f"the URL already has {EXPIRY_PARAMETER!r}; don't pass expires too")
            query.append((EXPIRY_PARAMETER, str(int(time.time()) + expires)))
        path, canonical_query = canonical_parts(parts.path or "/", query)
        signature = _signature(self._keys[0], f"{path}?{canonical_query}")
        signed_query = "&".join(filter(None, (canonical_query, f"{SIGNATURE_PARAMETER}={signature}")))
        return urlunsplit((parts.scheme, parts.netloc, path, signed_query, parts.fragment))

    def verify(self, raw_path: str, query: Query, now: float | None = None) -> Verdict:
        """Whether ``raw_path`` (as sent, percent-encoded) and ``query`` (decoded pairs) are
        signed by one of the keys and unexpired at ``now`` (default: the current time)."""
        signatures = [value for name, value in query if name == SIGNATURE_PARAMETER]
        if not signatures:
            return Verdict.MISSING
        if len(signatures) > 1:
            return Verdict.INVALID
        rest = [(name, value) for name, value in query if name != SIGNATURE_PARAMETER]
        path, canonical_query = canonical_parts(raw_path, rest)
        canonical = f"{path}?{canonical_query}"
        presented = signatures[0].encode("utf-8", "surrogatepass")
        if not any(hmac.compare_digest(_signature(key, canonical).encode(), presented) for key in self._keys):
            return Verdict.INVALID
        return _expiry_verdict([value for name, value in rest if name == EXPIRY_PARAMETER], now)

    def require(self, request: Request) -> None:
        """Raise SignatureRejected unless ``request``'s URL is validly signed and unexpired."""
        raw_path = request.scope.get("raw_path")
        # raw_path is optional in ASGI; without it, re-encode the decoded path.
        path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else quote(request.scope["path"], safe="/")
        verdict = self.verify(path, request.query_params.multi_items())
        if verdict is not Verdict.VALID:
            raise SignatureRejected(_REJECTION_KINDS[verdict])


def sign_url(url_or_path: str, key: str | bytes, expires: int | None = None) -> str:
    """``url_or_path`` signed with ``key``, valid for ``expires`` seconds when given (else forever)."""
    return Signer([key]).sign(url_or_path, expires)


def parse_query(query_string: str) -> list[tuple[str, str]]:
    """A query string's decoded (name, value) pairs, in order, as the server reads them."""
    return parse_qsl(query_string, keep_blank_values=True)


def canonical_parts(raw_path: str, query: Query) -> tuple[str, str]:
    """The canonical path and the canonical query (without ``?``) of a path and decoded pairs."""
    path = quote(unquote_to_bytes(raw_path), safe="/")
    pairs = sorted((quote(name, safe=""), quote(value, safe="")) for name, value in query)
    return path, "&".join(f"{name}={value}" for name, value in pairs)


def _signature(key: bytes, canonical: str) -> str:
    digest = hmac.new(key, canonical.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _expiry_verdict(expiries: list[str], now: float | None) -> Verdict:
    if not expiries:
        return Verdict.VALID
    if len(expiries) > 1 or not _EXPIRY.fullmatch(expiries[0]):
        return Verdict.INVALID  # signed, but not a time we can read: refuse rather than guess
    current = time.time() if now is None else now
    return Verdict.EXPIRED if current > int(expiries[0]) else Verdict.VALID
