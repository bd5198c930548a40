"""mediasrv.signing in process: the canonical string, signing, verification, the settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from pydantic import ValidationError
from starlette.requests import Request

import mediasrv
from mediasrv.errors import Forbidden, SignatureRejected
from mediasrv.signing import Signer, SigningSettings, Verdict, canonical_parts, parse_query, sign_url

KEY = "k" * 32
OLD_KEY = "o" * 40
NOW = 1_700_000_000


def verdict(url: str, signer: Signer | None = None, now: float = NOW) -> Verdict:
    """What ``signer`` (default: one of KEY) says of ``url`` as a server would receive it."""
    parts = urlsplit(url)
    return (signer or Signer([KEY])).verify(parts.path, parse_query(parts.query), now=now)


def test_signing_sig_is_hmac_sha256_of_the_canonical_string_base64url_unpadded() -> None:
    signed = sign_url("/media/photos/cat.jpg?width=400&fit=cover", KEY)
    canonical = "/media/photos/cat.jpg?fit=cover&width=400"
    digest = hmac.new(KEY.encode(), canonical.encode(), hashlib.sha256).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert signed == f"{canonical}&sig={expected}"
    assert len(expected) == 43 and "=" not in expected


def test_signing_canonical_sorts_by_name_then_value_and_encodes_unreserved_only() -> None:
    path, query = canonical_parts(
        "/media/b/caf%c3%a9 menu+x~y.jpg", [("z", "1"), ("a-", "0"), ("a", "b c"), ("a", "a/b"), ("é", "+&=")]
    )
    assert path == "/media/b/caf%C3%A9%20menu%2Bx~y.jpg"
    # Pairs sort by name, then value: "a" before "a-", though "a-=0" < "a=..." as whole strings.
    assert query == "%C3%A9=%2B%26%3D&a=a%2Fb&a=b%20c&a-=0&z=1"


def test_signing_valid_url_verifies() -> None:
    assert verdict(sign_url("/media/b/k.jpg?v=1", KEY)) is Verdict.VALID


def test_signing_full_url_keeps_scheme_host_and_fragment_and_signs_only_path_and_query() -> None:
    signed = sign_url("https://cdn.example.com/media/b/k.jpg?v=1#top", KEY)
    assert signed.startswith("https://cdn.example.com/media/b/k.jpg?v=1&sig=")
    assert signed.endswith("#top")
    other_host = signed.replace("cdn.example.com", "origin.example.net")
    assert verdict(other_host.split("#")[0]) is Verdict.VALID


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("/media/b/k.jpg", "/media/b/j.jpg"),
        ("/media/b/k.jpg", "/media/c/k.jpg"),
        ("v=1", "v=2"),
        ("v=1", "v=1&x=1"),
        ("v=1", "v=1&v=1"),
        ("v=1&", "V=1&"),
    ],
)
def test_signing_any_change_to_path_or_parameters_invalidates(before: str, after: str) -> None:
    signed = sign_url("/media/b/k.jpg?v=1", KEY)
    tampered = signed.replace(before, after, 1)
    assert tampered != signed
    assert verdict(tampered) is Verdict.INVALID


def test_signing_dropping_a_parameter_invalidates() -> None:
    signed = sign_url("/media/b/k.jpg?v=1&w=2", KEY)
    assert verdict(signed.replace("w=2&", "")) is Verdict.INVALID


def test_signing_reordered_parameters_stay_valid() -> None:
    signed = sign_url("/media/b/k.jpg?a=1&b=2&b=1", KEY)
    path, query = signed.split("?")
    pairs = query.split("&")
    assert verdict(f"{path}?{'&'.join(reversed(pairs))}") is Verdict.VALID


def test_signing_equivalent_encodings_of_path_and_query_stay_valid() -> None:
    signed = sign_url("/media/b/a b/é.jpg?text=a b&x=~", KEY)
    assert "/media/b/a%20b/%C3%A9.jpg?text=a%20b&x=~&sig=" in signed
    respelled = signed.replace("%C3%A9", "%c3%a9").replace("text=a%20b", "text=a+b").replace("x=~", "x=%7E")
    assert verdict(respelled) is Verdict.VALID


def test_signing_missing_sig() -> None:
    assert verdict("/media/b/k.jpg?v=1") is Verdict.MISSING
    assert verdict("/media/b/k.jpg") is Verdict.MISSING


@pytest.mark.parametrize("sig", ["", "abc", "ü" * 43, "A" * 43])
def test_signing_garbage_sig_is_invalid_not_an_error(sig: str) -> None:
    assert verdict(f"/media/b/k.jpg?sig={sig}") is Verdict.INVALID


def test_signing_two_sig_parameters_are_invalid() -> None:
    signed = sign_url("/media/b/k.jpg", KEY)
    assert verdict(signed + "&" + signed.split("?")[1]) is Verdict.INVALID


def test_signing_expiry() -> None:
    signed = sign_url(f"/media/b/k.jpg?exp={NOW}", KEY)
    assert verdict(signed, now=NOW) is Verdict.VALID  # expired means now > exp: no leeway either way
    assert verdict(signed, now=NOW + 0.5) is Verdict.EXPIRED
    assert verdict(signed.replace(f"exp={NOW}", f"exp={NOW + 3600}")) is Verdict.INVALID


def test_signing_far_future_expiry_is_valid() -> None:
    assert verdict(sign_url("/media/b/k.jpg?exp=99999999999999999999", KEY)) is Verdict.VALID


def test_signing_expires_sets_exp_from_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mediasrv.signing.time.time", lambda: NOW + 0.9)
    signed = sign_url("/media/b/k.jpg?v=1", KEY, expires=60)
    assert f"exp={NOW + 60}&v=1&sig=" in signed
    assert verdict(signed, now=NOW + 60) is Verdict.VALID
    assert verdict(signed, now=NOW + 61) is Verdict.EXPIRED


@pytest.mark.parametrize("exp", ["", "soon", "-5", "1e9", "1.5", "+5", "٣"])
def test_signing_unreadable_exp_is_invalid_even_when_signed(exp: str) -> None:
    assert verdict(sign_url(f"/media/b/k.jpg?exp={exp}", KEY)) is Verdict.INVALID


def test_signing_two_exp_parameters_are_invalid_even_when_signed() -> None:
    assert verdict(sign_url(f"/media/b/k.jpg?exp={NOW + 9}&exp={NOW + 99}", KEY)) is Verdict.INVALID


def test_signing_sign_replaces_an_old_sig_and_refuses_two_expiries() -> None:
    signed = sign_url("/media/b/k.jpg?v=1&sig=stale", KEY)
    assert "stale" not in signed and signed.count("sig=") == 1
    with pytest.raises(ValueError, match="exp"):
        sign_url(f"/media/b/k.jpg?exp={NOW}", KEY, expires=60)


@pytest.mark.parametrize("url", ["media/b/k.jpg", "k.jpg?v=1", ""])
def test_signing_sign_refuses_a_relative_path(url: str) -> None:
    with pytest.raises(ValueError, match="starting with '/'"):
        sign_url(url, KEY)


def test_signing_sign_of_a_bare_origin_signs_the_root_path() -> None:
    assert sign_url("https://cdn.example.com", KEY).startswith("https://cdn.example.com/?sig=")


def test_signing_wrong_key_is_invalid() -> None:
    assert verdict(sign_url("/media/b/k.jpg", "w" * 32)) is Verdict.INVALID


def test_signing_rotation_first_key_signs_every_key_verifies() -> None:
    rotated = Signer(["n" * 32, OLD_KEY])
    assert verdict(sign_url("/media/b/k.jpg", OLD_KEY), rotated) is Verdict.VALID
    new = rotated.sign("/media/b/k.jpg")
    assert new == sign_url("/media/b/k.jpg", "n" * 32)
    assert verdict(new, Signer([OLD_KEY])) is Verdict.INVALID


def test_signing_bytes_and_str_keys_agree() -> None:
    assert sign_url("/media/b/k.jpg", KEY.encode()) == sign_url("/media/b/k.jpg", KEY)


def test_signing_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    signed = sign_url("/media/b/k.jpg", KEY)
    assert verdict(signed) is Verdict.VALID
    assert verdict(signed[:-1] + ("A" if signed[-1] != "A" else "B")) is Verdict.INVALID
    assert len(calls) == 2
    assert calls[0][1] == signed.rsplit("sig=", 1)[1].encode()


def test_signing_signer_needs_a_key() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        Signer([])


def test_signing_settings_refuse_short_keys_without_showing_them() -> None:
    with pytest.raises(ValidationError) as caught:
        SigningSettings.model_validate({"keys": [KEY, "short-secret-value"]})
    message = str(caught.value)
    assert "key 1 is 18 bytes" in message and "at least 32" in message
    assert "short-secret-value" not in message


def test_signing_settings_count_bytes_not_characters() -> None:
    assert SigningSettings.model_validate({"keys": ["é" * 16]}).signer() is not None
    with pytest.raises(ValidationError):
        SigningSettings.model_validate({"keys": ["é" * 15 + "x"]})


def test_signing_settings_without_keys_give_no_signer() -> None:
    assert SigningSettings().signer() is None


def test_signing_rejection_kinds_and_status() -> None:
    for kind in ("signature_missing", "signature_invalid", "signature_expired"):
        error = SignatureRejected(kind)
        assert isinstance(error, Forbidden) and isinstance(error, PermissionError)
        assert error.status == 403 and error.kind == kind
    with pytest.raises(ValueError):
        SignatureRejected("signature_wrong_key")


def test_signing_public_names_are_importable_from_mediasrv() -> None:
    for name in ("Signer", "Verdict", "sign_url", "Forbidden", "SignatureRejected"):
        assert name in mediasrv.__all__
        assert getattr(mediasrv, name) is not None


def request_for(path_and_query: str, raw: bool = True) -> Request:
    """A Starlette request as an ASGI server would give it (``raw_path`` is optional in ASGI)."""
    raw_path, _, query = path_and_query.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": unquote(raw_path),
        "query_string": query.encode(),
        "headers": [],
    }
    if raw:
        scope["raw_path"] = raw_path.encode()
    return Request(scope)


@pytest.mark.parametrize("raw", [True, False])
def test_signing_require_accepts_a_signed_request_with_or_without_raw_path(raw: bool) -> None:
    signed = sign_url("/media/b/a b/é%.jpg?caption=ça va", KEY)
    Signer([KEY]).require(request_for(signed, raw))


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("/media/b/k.jpg?v=1", "signature_missing"),
        (sign_url("/media/b/k.jpg", KEY) + "&v=1", "signature_invalid"),
        (sign_url("/media/b/k.jpg?exp=1", KEY), "signature_expired"),
    ],
)
def test_signing_require_raises_the_rejection_kind(url: str, kind: str) -> None:
    with pytest.raises(SignatureRejected) as caught:
        Signer([KEY]).require(request_for(url))
    assert caught.value.kind == kind
