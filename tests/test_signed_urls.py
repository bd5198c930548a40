"""Signed URLs and per-backend access over a real ``mediasrv serve``: a signed local backend, a
public one on the same files, and a signed HTTP backend on a real upstream that records what
reaches it. The server's keys are [NEW_KEY, OLD_KEY]: rotation half done."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
from test_cli import mediasrv

from conftest import (
    PROJECT_DIR,
    Server,
    free_port,
    sha256,
    start_server,
    wait_until,
    write_settings,
)
from mediasrv.redaction import MASK
from mediasrv.signing import Signer, Verdict, parse_query, sign_url
from upstreams import Upstream, files_app, serving

NEW_KEY = "new-key-for-signed-urls-0123456789abcdef"
OLD_KEY = "old-key-still-verifying-urls-ABCDEFGHIJ"
WRONG_KEY = "a-key-this-server-has-never-heard-of-!!"
SPACED_KEY = "albums/a b/é ü+1.txt"  # a space, non-ASCII and "+" (which is not a space in a path)
SPACED_BODY = "spaced and accented\n"
FAR_FUTURE = 4102444800  # 2100-01-01

LANDSCAPE = PROJECT_DIR / "media" / "landscape.jpg"
JPEG_MAGIC = b"\xff\xd8\xff"


def settings(root: Path, upstream: Upstream) -> str:
    return f"""
[signing]
keys = ["{NEW_KEY}", "{OLD_KEY}"]

[backends.private]
kind = "local"
root = "{root}"
access = "signed"

[backends.public]
kind = "local"
root = "{root}"

[backends.remote]
kind = "http"
base_url = "{upstream.origin}/files/"
access = "signed"
"""


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    root = tmp_path_factory.mktemp("upstream-files")
    shutil.copy(LANDSCAPE, root / "landscape.jpg")
    with serving(files_app(root)) as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("signed-files")
    shutil.copy(LANDSCAPE, root / "landscape.jpg")
    shutil.copy(LANDSCAPE, root / "other.jpg")
    (root / SPACED_KEY).parent.mkdir(parents=True)
    (root / SPACED_KEY).write_text(SPACED_BODY)
    running = start_server(tmp_path_factory.mktemp("signed-server"), settings(root, upstream))
    yield running
    running.stop()


def fetch(server: Server, signed_path: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str], bytes]:
    """The request with its path and query sent exactly as given."""
    return server.raw_get(signed_path, headers=headers, method=method)


def detail(body: bytes) -> str:
    return str(json.loads(body)["detail"])


def assert_landscape(status: int, body: bytes) -> None:
    assert status == 200
    assert body.startswith(JPEG_MAGIC)
    assert sha256(body) == sha256(LANDSCAPE.read_bytes())


def assert_rejected(status: int, body: bytes, why: str) -> None:
    assert status == 403
    assert detail(body) == f"signature {why}" or (why == "missing" and detail(body).startswith("signature required"))
    for secret in (NEW_KEY, OLD_KEY):
        assert secret.encode() not in body


def metric(server: Server, backend: str, kind: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    match = re.search(rf'^mediasrv_errors_total{{backend="{backend}",kind="{kind}"}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_signed_url_valid(server: Server) -> None:
    status, _, body = fetch(server, sign_url("/media/private/landscape.jpg", NEW_KEY))
    assert_landscape(status, body)


def test_signed_url_with_parameters_and_expiry_valid(server: Server) -> None:
    status, _, body = fetch(server, sign_url("/media/private/landscape.jpg?v=3", NEW_KEY, expires=300))
    assert_landscape(status, body)


def test_signed_url_missing_signature(server: Server) -> None:
    status, headers, body = fetch(server, "/media/private/landscape.jpg?v=3")
    assert_rejected(status, body, "missing")
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("signed_path", "before", "after"),
    [
        pytest.param("/media/private/landscape.jpg", "landscape.jpg", "other.jpg", id="tampered-path"),
        pytest.param("/media/public/landscape.jpg", "/public/", "/private/", id="moved-to-another-backend"),
        pytest.param("/media/private/landscape.jpg?v=3", "v=3", "v=4", id="tampered-parameter"),
        pytest.param("/media/private/landscape.jpg?v=3", "&sig=", "&width=4000&sig=", id="parameter-added"),
        pytest.param("/media/private/landscape.jpg?v=3&w=1", "v=3&", "", id="parameter-removed"),
    ],
)
def test_signed_url_tampered(server: Server, signed_path: str, before: str, after: str) -> None:
    signed = sign_url(signed_path, NEW_KEY)
    assert before in signed
    status, _, body = fetch(server, signed.replace(before, after))
    assert_rejected(status, body, "invalid")


def test_signed_url_exp_changed_is_invalid(server: Server) -> None:
    signed = sign_url(f"/media/private/landscape.jpg?exp={int(time.time()) + 60}", NEW_KEY)
    status, _, body = fetch(server, re.sub(r"exp=\d+", f"exp={FAR_FUTURE}", signed))
    assert_rejected(status, body, "invalid")


def test_signed_url_reordered_parameters_stay_valid(server: Server) -> None:
    signed = sign_url("/media/private/landscape.jpg?b=2&a=1&c=3", NEW_KEY)
    path, query = signed.split("?")
    assert query.startswith("a=1&b=2&c=3&sig=")
    pairs = query.split("&")
    status, _, body = fetch(server, f"{path}?{pairs[3]}&{pairs[2]}&{pairs[0]}&{pairs[1]}")
    assert_landscape(status, body)


def test_signed_url_expired(server: Server) -> None:
    signed = sign_url(f"/media/private/landscape.jpg?exp={int(time.time()) - 1}", NEW_KEY)
    status, _, body = fetch(server, signed)
    assert_rejected(status, body, "expired")


def test_signed_url_far_future_expiry(server: Server) -> None:
    status, _, body = fetch(server, sign_url(f"/media/private/landscape.jpg?exp={FAR_FUTURE}", NEW_KEY))
    assert_landscape(status, body)


def test_signed_url_wrong_key(server: Server) -> None:
    status, _, body = fetch(server, sign_url("/media/private/landscape.jpg", WRONG_KEY))
    assert_rejected(status, body, "invalid")


def test_signed_url_rotated_key_old_still_verifies_new_signs(server: Server) -> None:
    status, _, body = fetch(server, sign_url("/media/private/landscape.jpg", OLD_KEY))
    assert_landscape(status, body)
    signed = mediasrv_sign(server, f"{server.url}/media/private/landscape.jpg")
    path = signed.removeprefix(server.url)
    assert signed == sign_url(f"{server.url}/media/private/landscape.jpg", NEW_KEY)
    parts = urlsplit(path)
    assert Signer([OLD_KEY]).verify(parts.path, parse_query(parts.query)) is Verdict.INVALID
    status, _, body = fetch(server, path)
    assert_landscape(status, body)


def test_signed_url_percent_encoded_key_with_spaces_and_unicode(server: Server) -> None:
    signed = sign_url(f"/media/private/{SPACED_KEY}?caption=ça va", NEW_KEY)
    assert "/albums/a%20b/%C3%A9%20%C3%BC%2B1.txt?caption=%C3%A7a%20va&sig=" in signed
    status, _, body = fetch(server, signed)
    assert status == 200 and body.decode() == SPACED_BODY
    # Another spelling of the same path and query (lower-case hex, "+" for the query's space).
    respelled = signed.replace("%C3%A9", "%c3%a9").replace("caption=%C3%A7a%20va", "caption=%c3%a7a+va")
    assert respelled.count("%c3") == 2
    status, _, body = fetch(server, respelled)
    assert status == 200 and body.decode() == SPACED_BODY
    # A "+" in a path is a plus, not a space: that is another key and another signature.
    status, _, body = fetch(server, signed.replace("%2B1", "%201"))
    assert_rejected(status, body, "invalid")


def test_signed_url_head(server: Server) -> None:
    status, headers, body = fetch(server, sign_url("/media/private/landscape.jpg", NEW_KEY), method="HEAD")
    assert status == 200 and body == b""
    assert headers["content-length"] == str(LANDSCAPE.stat().st_size)
    assert headers["content-type"] == "image/jpeg"
    status, _, _ = fetch(server, "/media/private/landscape.jpg", method="HEAD")
    assert status == 403


def test_signed_url_range(server: Server) -> None:
    status, headers, body = fetch(server, sign_url("/media/private/landscape.jpg", NEW_KEY), range="bytes=0-99")
    assert status == 206
    assert headers["content-range"] == f"bytes 0-99/{LANDSCAPE.stat().st_size}"
    assert body == LANDSCAPE.read_bytes()[:100] and body.startswith(JPEG_MAGIC)
    status, _, body = fetch(server, "/media/private/landscape.jpg", range="bytes=0-99")
    assert_rejected(status, body, "missing")


def test_signed_url_public_backend_ignores_sig_and_exp(server: Server) -> None:
    status, _, body = fetch(server, "/media/public/landscape.jpg?sig=not-a-signature&exp=1")
    assert_landscape(status, body)
    status, _, body = fetch(server, "/media/public/landscape.jpg")
    assert_landscape(status, body)


def test_signed_url_checked_before_the_key_or_the_object(server: Server) -> None:
    # No 400 for a bad key, no 404 for a missing object: nothing about the backend leaks.
    for path in ("/media/private/no-such.jpg", "/media/private/a/%2e%2e/%2e%2e/etc/passwd"):
        status, _, body = fetch(server, path)
        assert_rejected(status, body, "missing")
    status, _, _ = fetch(server, sign_url("/media/private/no-such.jpg", NEW_KEY))
    assert status == 404


def test_signed_url_no_backend_call_before_the_signature(server: Server, upstream: Upstream) -> None:
    before = len(upstream.requests)
    status, _, body = fetch(server, "/media/remote/landscape.jpg?v=1")
    assert_rejected(status, body, "missing")
    status, _, body = fetch(server, sign_url("/media/remote/landscape.jpg?v=1", WRONG_KEY))
    assert_rejected(status, body, "invalid")
    assert len(upstream.requests) == before
    status, _, body = fetch(server, sign_url("/media/remote/landscape.jpg?v=1", NEW_KEY))
    assert_landscape(status, body)
    assert upstream.paths()[before:] == ["/files/landscape.jpg"]  # sig and exp stay here


def test_signed_url_rejections_counted_by_kind(server: Server) -> None:
    kinds = ("signature_missing", "signature_invalid", "signature_expired")
    before = {kind: metric(server, "private", kind) for kind in kinds}
    fetch(server, "/media/private/landscape.jpg")
    fetch(server, "/media/private/landscape.jpg?sig=AAAA")
    fetch(server, "/media/private/landscape.jpg?sig=BBBB", method="HEAD")
    fetch(server, sign_url("/media/private/landscape.jpg?exp=1", NEW_KEY))
    after = {kind: metric(server, "private", kind) for kind in kinds}
    assert {kind: after[kind] - before[kind] for kind in kinds} == {
        "signature_missing": 1,
        "signature_invalid": 2,
        "signature_expired": 1,
    }


def test_signed_url_sig_and_exp_never_logged(server: Server) -> None:
    signed = sign_url("/media/private/landscape.jpg?exp=4102444801", NEW_KEY)
    expired = sign_url("/media/private/landscape.jpg?exp=1000000001", NEW_KEY)
    assert fetch(server, signed)[0] == 200
    assert fetch(server, expired)[0] == 403
    signatures = [url.rsplit("sig=", 1)[1] for url in (signed, expired)]
    assert wait_until(lambda: server.log().count('"path": "/media/private/landscape.jpg"') >= 2)
    log = server.log()
    for secret in (*signatures, "4102444801", "1000000001", "sig=", NEW_KEY, OLD_KEY):
        assert secret not in log
    assert '"error": "signature_expired"' in log


def test_signed_url_admin_shows_access_and_masks_keys(server: Server) -> None:
    backends = httpx.get(f"{server.url}/admin/backends", timeout=10)
    access = {backend["name"]: backend["settings"]["access"] for backend in backends.json()["backends"]}
    assert access == {"private": "signed", "public": "public", "remote": "signed"}
    signing = httpx.get(f"{server.url}/admin/signing", timeout=10)
    assert signing.json() == {"keys": [MASK, MASK], "signed_backends": ["private", "remote"]}
    page = httpx.get(f"{server.url}/admin/", timeout=10)
    for response in (backends, signing, page):
        assert response.status_code == 200
        assert NEW_KEY not in response.text and OLD_KEY not in response.text


# --- start-up and the command line ----------------------------------------------------------


def mediasrv_sign(server: Server, url: str, *options: str) -> str:
    result = mediasrv("sign", url, "--config", str(server.config_dir / "settings.toml"), *options, cwd=server.config_dir)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout.strip()


def test_signed_url_mediasrv_sign_output_accepted(server: Server) -> None:
    signed = mediasrv_sign(server, f"{server.url}/media/private/{quote(SPACED_KEY)}?v=3", "--expires", "120")
    exp = int(re.search(r"[?&]exp=(\d+)", signed).group(1))  # type: ignore[union-attr]
    assert time.time() + 110 < exp <= time.time() + 121
    response = httpx.get(signed, timeout=10)
    assert response.status_code == 200 and response.text == SPACED_BODY


def test_signed_url_mediasrv_sign_needs_keys(tmp_path: Path) -> None:
    path = write_settings(tmp_path, "")
    result = mediasrv("sign", "/media/x/y.jpg", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"mediasrv: {path}: signing.keys: empty; set it (or MEDIASRV_SIGNING__KEYS) to sign URLs\n"


@pytest.mark.parametrize("expires", ["0", "-5", "soon"])
def test_signed_url_mediasrv_sign_refuses_a_bad_expiry(tmp_path: Path, expires: str) -> None:
    path = write_settings(tmp_path, f'[signing]\nkeys = ["{NEW_KEY}"]\n')
    result = mediasrv("sign", "/media/x/y.jpg", "--expires", expires, "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "not a positive number of seconds" in result.stderr and result.stdout == ""


def test_signed_url_signed_backend_without_keys_refused_at_start_up(tmp_path: Path) -> None:
    path = write_settings(tmp_path, f'[backends.private]\nkind = "local"\nroot = "{tmp_path}"\naccess = "signed"\n')
    expected = f'mediasrv: {path}: backends.private.access: "signed" needs [signing] keys, and none are set\n'
    for command in (("check",), ("serve", "--port", str(free_port()))):
        result = mediasrv(*command, "--config", str(path), cwd=tmp_path)
        assert (result.returncode, result.stderr) == (2, expected)


def test_signed_url_short_key_refused_at_start_up(tmp_path: Path) -> None:
    path = write_settings(tmp_path, '[signing]\nkeys = ["a-31-byte-key-0123456789abcdefg"]\n')
    result = mediasrv("serve", "--port", str(free_port()), "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"mediasrv: {path}: signing.keys: Value error, key 0 is 31 bytes; signing keys need at least 32\n"
    )


def test_signed_url_unknown_access_refused_at_start_up(tmp_path: Path) -> None:
    path = write_settings(tmp_path, f'[backends.private]\nkind = "local"\nroot = "{tmp_path}"\naccess = "private"\n')
    result = mediasrv("check", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"mediasrv: {path}: backends.private.access: Input should be 'public' or 'signed'")


def test_signed_url_keys_in_the_environment_must_be_json(tmp_path: Path) -> None:
    path = write_settings(tmp_path, "")
    result = mediasrv("check", "--config", str(path), cwd=tmp_path, env={"MEDIASRV_SIGNING__KEYS": f"{NEW_KEY},x"})
    assert result.returncode == 2
    assert result.stderr.startswith(f'mediasrv: {path}: error parsing value for field "signing"')
    assert NEW_KEY not in result.stderr and len(result.stderr.splitlines()) == 1


def test_signed_url_keys_from_the_environment(tmp_path: Path) -> None:
    shutil.copy(LANDSCAPE, tmp_path / "landscape.jpg")
    text = f'[backends.private]\nkind = "local"\nroot = "{tmp_path}"\naccess = "signed"\n'
    env = {"MEDIASRV_SIGNING__KEYS": f'["{WRONG_KEY}", "{OLD_KEY}"]'}
    running = start_server(tmp_path / "server", text, env=env)
    try:
        assert_landscape(*fetch(running, sign_url("/media/private/landscape.jpg", OLD_KEY))[::2])
        assert fetch(running, sign_url("/media/private/landscape.jpg", NEW_KEY))[0] == 403
    finally:
        running.stop()
