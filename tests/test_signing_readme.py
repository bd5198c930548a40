"""The README's signed-URL documentation, checked against the implementation and a real server:
the worked example, the stand-alone Python signer, the openssl shell example, the settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from test_readme import code_block

from conftest import PROJECT_DIR, Server, sha256, start_server
from mediasrv.signing import Signer, SigningSettings, Verdict, canonical_parts, parse_query, sign_url

LANDSCAPE = PROJECT_DIR / "media" / "landscape.jpg"


def worked_example() -> dict[str, str]:
    block = code_block("text", "canonical  ")
    return dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in block.strip().splitlines())  # type: ignore[misc]


def readme_signer() -> Callable[..., str]:
    namespace: dict[str, object] = {}
    exec(code_block("python", "def sign(url: str, key: str"), namespace)
    return namespace["sign"]  # type: ignore[return-value]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Serves landscape.jpg as the signed backend ``local``, with the README's example key."""
    root = tmp_path_factory.mktemp("readme-media")
    shutil.copy(LANDSCAPE, root / "landscape.jpg")
    key = worked_example()["key"]
    settings = f'[signing]\nkeys = ["{key}"]\n\n[backends.local]\nkind = "local"\nroot = "{root}"\naccess = "signed"\n'
    running = start_server(tmp_path_factory.mktemp("readme-server"), settings)
    yield running
    running.stop()


def test_readme_worked_example_matches_the_implementation() -> None:
    example = worked_example()
    parts = urlsplit(example["URL"])
    path, query = canonical_parts(parts.path, parse_query(parts.query))
    assert f"{path}?{query}" == example["canonical"]
    assert sign_url(example["URL"], example["key"]) == example["signed"]
    assert example["signed"] == f"{example['canonical']}&sig={example['sig']}"
    # The sig from the rule's own words, by hand: HMAC-SHA256, base64url, no padding.
    digest = hmac.new(example["key"].encode(), example["canonical"].encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(digest).decode().rstrip("=") == example["sig"]
    signed = urlsplit(example["signed"])
    assert Signer([example["key"]]).verify(signed.path, parse_query(signed.query), now=0) is Verdict.VALID


@pytest.mark.parametrize(
    "url",
    [
        "/media/local/landscape.jpg",
        "/media/local/landscape.jpg?v=3&a=1&a=0&flag",
        "/media/b/summer 2026/café+menu.jpg?caption=a b+c&x=%2B&é=ü&a-=1&a=2",
        "https://cdn.example.com/media/b/k.jpg?sig=old&exp=4102444800#frag",
    ],
)
def test_readme_standalone_python_signer_agrees_with_sign_url(url: str) -> None:
    key = worked_example()["key"]
    assert readme_signer()(url, key) == sign_url(url, key)


def test_readme_standalone_python_signer_with_expiry_is_accepted(server: Server) -> None:
    signed = readme_signer()("/media/local/landscape.jpg?v=3", worked_example()["key"], expires=60)
    assert re.search(r"\?exp=\d+&v=3&sig=", signed)
    response = httpx.get(server.url + signed, timeout=10)
    assert response.status_code == 200
    assert sha256(response.content) == sha256(LANDSCAPE.read_bytes())


def test_readme_shell_example_url_is_accepted(server: Server) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    script = code_block("sh", "openssl dgst").replace("http://127.0.0.1:8000", server.url)
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30, check=True)
    url = result.stdout.strip()
    assert url.startswith(f"{server.url}/media/local/landscape.jpg?exp=")
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert sha256(response.content) == sha256(LANDSCAPE.read_bytes())
    assert httpx.get(url.replace("v=3", "v=4"), timeout=10).status_code == 403


def test_readme_signing_settings_examples_are_valid() -> None:
    access_example = tomllib.loads(code_block("toml", 'access = "signed"'))
    assert len(SigningSettings.model_validate(access_example["signing"]).keys) == 2
    assert access_example["backends"]["private"]["access"] == "signed"
    for text in (code_block("toml", "[server]"), (PROJECT_DIR / "settings.toml").read_text()):
        document = tomllib.loads(text)
        assert set(document["signing"]) == set(SigningSettings.model_fields)
        assert SigningSettings.model_validate(document["signing"]).signer() is None
        assert document["backends"]["local"]["access"] == "public"
