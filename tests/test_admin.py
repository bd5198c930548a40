"""/admin, /readyz and their health checks, over a real uvicorn with real local, S3 (moto)
and HTTP (aiohttp) backends."""

from __future__ import annotations

import base64
import importlib.metadata
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from conftest import PROJECT_DIR, Server, free_port, start_server, wait_until
from s3_server import MotoServer
from upstreams import Upstream, files_app, serving

ADMIN_TOKEN = "admin-TOKEN-5b1e0c"
S3_ACCESS_KEY_ID = "AKIAMEDIASRVADMIN01"
S3_SECRET = "s3-SECRET-9f8e7d6c"
UPSTREAM_BEARER = "upstream-SECRET-77aa"
UPSTREAM_API_KEY = "apikey-SECRET-4242"
SECRETS = (ADMIN_TOKEN, S3_SECRET, UPSTREAM_BEARER, UPSTREAM_API_KEY, S3_ACCESS_KEY_ID)
VERSION = importlib.metadata.version("mediasrv")
BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Site:
    server: Server
    upstream: Upstream
    refused_port: int


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    root = tmp_path_factory.mktemp("upstream")
    (root / "hello.txt").write_text("hello")
    with serving(files_app(root)) as running:
        yield running


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, moto: MotoServer, upstream: Upstream) -> Iterator[Site]:
    """A server with one backend of each built-in kind, a broken one, and an admin token; the
    S3 secret comes from the environment, the rest from the file."""
    moto.client().create_bucket(Bucket="admin-photos")
    refused_port = free_port()
    settings = f"""
[admin]
token = "{ADMIN_TOKEN}"
health_cache = 0

[backends.disk]
kind = "local"
root = "{PROJECT_DIR / "media"}"
cache_control = "public, max-age=60"

[backends.photos]
kind = "s3"
bucket = "admin-photos"
prefix = "public"
endpoint_url = "{moto.endpoint_url}"
access_key_id = "{S3_ACCESS_KEY_ID}"
max_pool_connections = 8

[backends.cdn]
kind = "http"
base_url = "{upstream.origin}/files/"
health_path = "/health"
headers = {{ "Authorization" = "Bearer {UPSTREAM_BEARER}", "X-Api-Key" = "{UPSTREAM_API_KEY}" }}

[backends.gone]
kind = "http"
base_url = "http://127.0.0.1:{refused_port}/"
timeout = 2
"""
    env = {"MEDIASRV_BACKENDS__PHOTOS__SECRET_ACCESS_KEY": S3_SECRET}
    server = start_server(tmp_path_factory.mktemp("admin-site"), settings, env=env)
    yield Site(server, upstream, refused_port)
    server.stop()


def admin_get(server: Server, path: str, **headers: str) -> httpx.Response:
    return httpx.get(server.url + path, headers={**BEARER, **headers}, timeout=20)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# --- the listing ----------------------------------------------------------------------------


def test_backends_lists_every_backend_in_settings_order(site: Site) -> None:
    response = admin_get(site.server, "/admin/backends")
    assert response.status_code == 200
    backends = response.json()["backends"]
    assert [backend["name"] for backend in backends] == ["disk", "photos", "cdn", "gone"]
    assert [backend["kind"] for backend in backends] == ["local", "s3", "http", "http"]
    assert set(backends[0]) == {"name", "kind", "plugin", "health", "settings"}


def test_backends_name_their_plugin_module_and_version(site: Site) -> None:
    backends = admin_get(site.server, "/admin/backends").json()["backends"]
    assert [backend["plugin"] for backend in backends] == [
        {"module": "mediasrv_local", "version": VERSION},
        {"module": "mediasrv_s3", "version": VERSION},
        {"module": "mediasrv_http", "version": VERSION},
        {"module": "mediasrv_http", "version": VERSION},
    ]


def test_backend_health_is_checked_and_timed(site: Site) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    backends = {backend["name"]: backend for backend in admin_get(site.server, "/admin/backends").json()["backends"]}
    for name in ("disk", "photos", "cdn"):
        health = backends[name]["health"]
        assert health["ok"] is True, health
        assert health["error"] is None
        assert 0 <= health["latency_ms"] < 5000
        checked_at = datetime.fromisoformat(health["checked_at"])
        assert health["checked_at"].endswith("Z")
        assert before <= checked_at <= datetime.now(UTC) + timedelta(seconds=1)
    gone = backends["gone"]["health"]
    assert gone["ok"] is False
    assert "refused" in gone["error"].lower() or "connect" in gone["error"].lower()


def test_backend_settings_are_shown_with_secrets_masked(site: Site) -> None:
    backends = {backend["name"]: backend for backend in admin_get(site.server, "/admin/backends").json()["backends"]}
    disk = backends["disk"]["settings"]
    assert disk == {
        "kind": "local",
        "access": "public",
        "cache_control": "public, max-age=60",
        "chunk_size": 1048576,
        "root": str(PROJECT_DIR / "media"),
    }
    photos = backends["photos"]["settings"]
    assert photos["bucket"] == "admin-photos"
    assert photos["prefix"] == "public/"
    assert photos["max_connections"] == 8  # given as max_pool_connections, its former name
    assert photos["secret_access_key"] == "**********"
    assert photos["access_key_id"] == "**********"
    cdn = backends["cdn"]["settings"]
    assert cdn["base_url"] == f"{site.upstream.origin}/files/"
    assert cdn["headers"] == {"Authorization": "**********", "X-Api-Key": "**********"}


def test_one_backend_by_name(site: Site) -> None:
    response = admin_get(site.server, "/admin/backends/photos")
    assert response.status_code == 200
    assert response.json()["name"] == "photos"
    assert response.json()["health"]["ok"] is True


def test_unknown_backend_by_name_is_404(site: Site) -> None:
    response = admin_get(site.server, "/admin/backends/nope")
    assert response.status_code == 404
    assert response.json() == {"detail": "no backend named 'nope'"}


def test_plugins_lists_the_builtins_with_hooks_kinds_and_versions(site: Site) -> None:
    response = admin_get(site.server, "/admin/plugins")
    assert response.status_code == 200
    plugins = {plugin["name"]: plugin for plugin in response.json()["plugins"]}
    assert {"local", "s3", "http"} <= set(plugins)
    assert plugins["s3"] == {
        "name": "s3",
        "module": "mediasrv_s3",
        "distribution": "mediasrv",
        "version": VERSION,
        "hooks": ["mediasrv_register_backends", "mediasrv_register_result_stores"],
        "kinds": ["s3"],
        "operations": [],
    }
    assert plugins["transforms"]["operations"] == ["blur", "sharpen"]


def test_admin_responses_are_not_cached(site: Site) -> None:
    assert admin_get(site.server, "/admin/backends").headers["cache-control"] == "no-store"


def test_no_secret_in_any_admin_response_or_the_log(site: Site) -> None:
    server = site.server
    assert httpx.get(server.url + "/media/cdn/hello.txt", timeout=10).text == "hello"
    bodies = [
        admin_get(server, path).text
        for path in ("/admin/", "/admin/backends", "/admin/backends/photos", "/admin/backends/cdn", "/admin/plugins")
    ]
    bodies += [httpx.get(server.url + path, timeout=20).text for path in ("/readyz", "/metrics")]
    bodies.append(httpx.get(server.url + "/admin/backends", headers={"Authorization": "Bearer wrong"}).text)
    for body in bodies:
        assert_no_secret(body)
    assert "**********" in bodies[1]
    assert wait_until(lambda: '"path": "/admin/plugins"' in server.log())  # the requests above were logged
    assert_no_secret(server.log())


# --- the HTML page --------------------------------------------------------------------------


class TableReader(HTMLParser):
    """The text of each cell of each row of the table with id ``table_id``."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.inside = False
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and ("id", self.table_id) in attrs:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data + " ")


def read_table(html: str, table_id: str) -> list[list[str]]:
    reader = TableReader(table_id)
    reader.feed(html)
    return reader.rows


def test_admin_page_renders_the_backends_as_a_table(site: Site) -> None:
    response = admin_get(site.server, "/admin/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    rows = read_table(response.text, "backends")
    assert rows[0][:4] == ["Name", "Kind", "Plugin", "Health"]
    by_name = {row[0]: row for row in rows[1:]}
    assert list(by_name) == ["disk", "photos", "cdn", "gone"]
    assert by_name["photos"][1:4] == ["s3", f"mediasrv_s3 {VERSION}", "ok"]
    assert by_name["gone"][3].startswith("failing:")
    assert "bucket admin-photos" in by_name["photos"][6]
    assert "secret_access_key **********" in by_name["photos"][6]


def test_admin_page_lists_the_plugins(site: Site) -> None:
    rows = read_table(admin_get(site.server, "/admin/").text, "plugins")
    assert ["s3", "mediasrv_s3", "mediasrv", VERSION, "mediasrv_register_backends, mediasrv_register_result_stores", "s3", ""] in rows
    transforms = ["mediasrv.transforms.operations", "mediasrv", VERSION, "mediasrv_register_transforms", ""]
    assert ["transforms", *transforms, "blur, sharpen"] in rows


def test_admin_page_escapes_what_settings_contain(tmp_path: Path) -> None:
    settings = f"""
[backends.disk]
kind = "local"
root = "{PROJECT_DIR / "media"}"
cache_control = "<script>alert(1)</script>"
"""
    server = start_server(tmp_path, settings)
    try:
        page = httpx.get(server.url + "/admin/", timeout=10).text
    finally:
        server.stop()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- access control -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/", "/admin/backends", "/admin/backends/disk", "/admin/plugins", "/admin/x"])
def test_every_admin_route_needs_the_token(site: Site, path: str) -> None:
    response = httpx.get(site.server.url + path, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"detail": "admin token required"}
    challenges = response.headers.get_list("www-authenticate")
    assert any(challenge.startswith("Bearer ") for challenge in challenges)
    assert any(challenge.startswith("Basic ") for challenge in challenges)


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong",
        f"Bearer {ADMIN_TOKEN}x",
        f"Bearer {ADMIN_TOKEN[:-1]}",
        "Bearer",
        ADMIN_TOKEN,
        f"Token {ADMIN_TOKEN}",
        basic("admin", "wrong"),
        basic(ADMIN_TOKEN, ""),
        "Basic !!!not-base64!!!",
    ],
)
def test_a_wrong_credential_is_401(site: Site, authorization: str) -> None:
    response = httpx.get(site.server.url + "/admin/backends", headers={"Authorization": authorization}, timeout=10)
    assert response.status_code == 401


@pytest.mark.parametrize(
    "authorization", [f"Bearer {ADMIN_TOKEN}", f"bearer {ADMIN_TOKEN}", basic("admin", ADMIN_TOKEN), basic("", ADMIN_TOKEN)]
)
def test_the_token_as_bearer_or_basic_password_is_accepted(site: Site, authorization: str) -> None:
    response = httpx.get(site.server.url + "/admin/backends", headers={"Authorization": authorization}, timeout=20)
    assert response.status_code == 200


def test_with_a_token_a_proxied_request_is_accepted(site: Site) -> None:
    response = admin_get(site.server, "/admin/plugins", **{"X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 200


@pytest.fixture(scope="module")
def tokenless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = f'[backends.disk]\nkind = "local"\nroot = "{PROJECT_DIR / "media"}"\n'
    server = start_server(tmp_path_factory.mktemp("tokenless"), settings)
    yield server
    server.stop()


def test_without_a_token_a_loopback_client_is_let_in(tokenless: Server) -> None:
    response = httpx.get(tokenless.url + "/admin/backends", timeout=10)
    assert response.status_code == 200
    assert response.json()["backends"][0]["name"] == "disk"


@pytest.mark.parametrize(
    "header",
    [
        {"X-Forwarded-For": "203.0.113.9"},
        {"Forwarded": "for=203.0.113.9;proto=https"},
        {"X-Real-IP": "203.0.113.9"},
        {"X-Forwarded-For": "127.0.0.1"},
    ],
)
def test_without_a_token_a_proxied_request_is_403(tokenless: Server, header: dict[str, str]) -> None:
    response = httpx.get(tokenless.url + "/admin/backends", headers=header, timeout=10)
    assert response.status_code == 403
    assert "proxy" in response.json()["detail"]
    assert "token" in response.json()["detail"]


def test_probes_need_no_credentials(site: Site) -> None:
    assert httpx.get(site.server.url + "/healthz", timeout=10).status_code == 200
    assert httpx.get(site.server.url + "/metrics", timeout=10).status_code == 200
    assert httpx.get(site.server.url + "/readyz", timeout=20).status_code in (200, 503)


# --- /readyz --------------------------------------------------------------------------------


def test_readyz_names_the_failing_backends_only(site: Site) -> None:
    response = httpx.get(site.server.url + "/readyz", timeout=20)
    assert response.status_code == 503
    assert response.json() == {"detail": "backends not healthy: gone", "failing": ["gone"]}


def test_readyz_is_200_when_every_backend_is_healthy(tokenless: Server) -> None:
    response = httpx.get(tokenless.url + "/readyz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "backends": ["disk"]}


def test_readyz_flips_to_503_when_s3_stops_and_back_when_it_returns(
    own_moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = "[admin]\nhealth_cache = 0.5\n" + own_moto.backend_settings("store", "media")
    server = start_server(tmp_path_factory.mktemp("readyz"), settings)
    try:
        assert httpx.get(server.url + "/readyz", timeout=20).status_code == 200
        own_moto.stop()
        assert wait_until(lambda: httpx.get(server.url + "/readyz", timeout=20).status_code == 503, timeout=20)
        assert httpx.get(server.url + "/readyz", timeout=20).json()["failing"] == ["store"]
        own_moto.start()
        own_moto.client().create_bucket(Bucket="media")
        assert wait_until(lambda: httpx.get(server.url + "/readyz", timeout=20).status_code == 200, timeout=20)
    finally:
        server.stop()


def test_a_burst_of_probes_checks_each_backend_once(upstream: Upstream, tmp_path: Path) -> None:
    settings = f"""
[admin]
health_cache = 30

[backends.cdn]
kind = "http"
base_url = "{upstream.origin}/files/"
health_path = "/health"
"""
    server = start_server(tmp_path, settings)
    try:
        checks_before = upstream.paths().count("/health")
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: httpx.get(server.url + "/readyz", timeout=20).status_code, range(40)))
        assert statuses == [200] * 40
        assert upstream.paths().count("/health") - checks_before == 1
    finally:
        server.stop()


def test_a_health_check_that_hangs_is_cut_at_the_timeout(tmp_path: Path) -> None:
    """The backend answers health() by sleeping forever; readyz still answers, in time."""
    settings = 'plugins = ["memory_backend"]\n[admin]\nhealth_timeout = 0.5\n\n[backends.stuck]\nkind = "memory"\nhang_health = true\n'
    server = start_server(tmp_path, settings, plugins=("memory_backend",))
    try:
        started = time.monotonic()
        response = httpx.get(server.url + "/readyz", timeout=20)
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert elapsed < 3
        health = httpx.get(server.url + "/admin/backends/stuck", timeout=20).json()["health"]
        assert health == {**health, "ok": False, "error": "health check timed out after 0.5 s"}
    finally:
        server.stop()


def test_a_backend_that_failed_to_start_is_unhealthy(tmp_path: Path) -> None:
    settings = 'plugins = ["memory_backend"]\n[backends.broken]\nkind = "memory"\nfail_start = true\n'
    server = start_server(tmp_path, settings, plugins=("memory_backend",))
    try:
        assert httpx.get(server.url + "/readyz", timeout=20).json()["failing"] == ["broken"]
        health = httpx.get(server.url + "/admin/backends/broken", timeout=20).json()["health"]
        assert health["ok"] is False
        assert health["error"] == "failed to start (see the server log)"
    finally:
        server.stop()


def test_admin_json_is_valid_for_every_backend(site: Site) -> None:
    text = admin_get(site.server, "/admin/backends").text
    assert json.loads(text)["backends"]


def test_a_health_check_that_raises_shows_only_the_error_type(tmp_path: Path) -> None:
    settings = 'plugins = ["memory_backend"]\n[backends.odd]\nkind = "memory"\nhealth_raises = true\n'
    server = start_server(tmp_path, settings, plugins=("memory_backend",))
    try:
        body = httpx.get(server.url + "/admin/backends/odd", timeout=20).text
        assert json.loads(body)["health"]["error"] == "health check failed: RuntimeError"
        assert "secret-token" not in body
        assert "secret-token-in-a-health-error" in server.log()  # the operator can still see why
    finally:
        server.stop()
