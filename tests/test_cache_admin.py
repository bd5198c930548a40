"""``/admin/cache`` over a real uvicorn: the tiers, the purge API and the admin page's form,
behind the admin token; and a server whose cache folder is unusable still serving."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import PROJECT_DIR, Server, get, start_server
from mediasrv.cache import ResultKey, StoredResult, source_id
from mediasrv.cache.disk import DiskSettings, DiskStore

TOKEN = "cache-admin-TOKEN-31337"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def fill(folder: Path, entries: dict[tuple[str, str], list[str]]) -> None:
    """Store variants in the disk cache at ``folder`` as a server would: {(backend, key): [etag]}."""

    async def put() -> None:
        store = DiskStore(DiskSettings(path=folder))
        await store.start()
        for (backend, key), variants in entries.items():
            for variant in variants:
                await store.put(ResultKey.of(backend, key, variant), StoredResult.whole(b"v" * 100, "image/webp", variant))
        await store.stop()

    asyncio.run(put())


def settings(cache_dir: Path, token: str = TOKEN) -> str:
    return f"""
[admin]
token = "{token}"

[backends.local]
kind = "local"
root = "{PROJECT_DIR / "media"}"

[cache]
path = "{cache_dir}"
max_bytes = 10485760
"""


@dataclass
class Site:
    server: Server
    cache_dir: Path

    def fill(self, key: str, count: int) -> None:
        fill(self.cache_dir, {("local", key): [f'"w{index}"' for index in range(count)]})

    def stored(self, key: str) -> int:
        folder = self.cache_dir / "results" / source_id("local", key)[:2] / source_id("local", key)
        return len(list(folder.iterdir())) if folder.exists() else 0


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("cache-admin")
    fill(root / "cache", {("local", "listed.jpg"): ['"w1"', '"w2"']})
    server = start_server(root / "server", settings(root / "cache"))
    yield Site(server, root / "cache")
    server.stop()


def admin(server: Server, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, server.url + path, headers=BEARER, timeout=10, **kwargs)


def test_admin_cache_lists_the_disk_tier(site: Site) -> None:
    document = admin(site.server, "GET", "/admin/cache").json()
    assert document["enabled"] is True
    [disk] = document["tiers"]
    assert (disk["name"], disk["kind"], disk["max_bytes"], disk["error"]) == ("disk", "disk", 10485760, None)
    assert disk["entries"] >= 2 and disk["bytes"] > 200
    assert document["sources"]["entries"] == 0
    assert {"hits", "misses", "hit_ratio", "evictions"} <= set(disk)


def test_delete_purges_every_variant_of_one_source(site: Site) -> None:
    site.fill("a.jpg", 3)
    site.fill("b.jpg", 1)
    response = admin(site.server, "DELETE", "/admin/cache/local/a.jpg")
    assert response.status_code == 200
    assert response.json() == {"backend": "local", "key": "a.jpg", "purged": {"disk": 3}}
    assert (site.stored("a.jpg"), site.stored("b.jpg")) == (0, 1)
    assert admin(site.server, "DELETE", "/admin/cache/local/a.jpg").json()["purged"] == {"disk": 0}


@pytest.mark.parametrize(
    ("path", "status", "detail"),
    [
        ("/admin/cache/nope/a.jpg", 404, "no backend named 'nope'"),
        ("/admin/cache/local/..%2F..%2Fetc%2Fpasswd", 400, None),
    ],
)
def test_delete_of_a_bad_source_is_a_clear_error(site: Site, path: str, status: int, detail: str | None) -> None:
    response = admin(site.server, "DELETE", path)
    assert response.status_code == status
    assert "detail" in response.json()
    if detail:
        assert response.json()["detail"] == detail


@pytest.mark.parametrize(("method", "path"), [("GET", "/admin/cache"), ("DELETE", "/admin/cache/local/kept.jpg")])
def test_cache_admin_needs_the_token(site: Site, method: str, path: str) -> None:
    site.fill("kept.jpg", 1)
    assert httpx.request(method, site.server.url + path, timeout=10).status_code == 401
    assert site.stored("kept.jpg") == 1


def test_admin_page_shows_the_cache_and_purges_from_its_form(site: Site) -> None:
    site.fill("form.jpg", 2)
    page = admin(site.server, "GET", "/admin/")
    assert '<table id="cache">' in page.text
    assert '<form method="post" action="cache/purge">' in page.text
    assert "form-action 'self'" in page.headers["content-security-policy"]
    form = {"backend": "local", "key": "form.jpg"}
    same_site = {**BEARER, "Sec-Fetch-Site": "same-origin"}
    response = httpx.post(site.server.url + "/admin/cache/purge", data=form, headers=same_site, timeout=10)
    assert response.status_code == 200
    assert "Purged local/form.jpg: 2 from disk." in response.text
    assert site.stored("form.jpg") == 0


@pytest.mark.parametrize(
    "headers", [{"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}, {}], ids=["fetch", "origin", "none"]
)
def test_the_purge_form_refuses_requests_from_other_sites(site: Site, headers: dict[str, str]) -> None:
    site.fill("csrf.jpg", 1)
    form = {"backend": "local", "key": "csrf.jpg"}
    response = httpx.post(site.server.url + "/admin/cache/purge", data=form, headers={**BEARER, **headers})
    assert response.status_code == 403
    assert site.stored("csrf.jpg") == 1


def test_without_a_cache_the_admin_says_so(tmp_path: Path) -> None:
    server = start_server(tmp_path, settings(tmp_path / "cache").split("[cache]")[0])
    try:
        document = admin(server, "GET", "/admin/cache").json()
        assert (document["enabled"], document["tiers"]) == (False, [])
        response = admin(server, "DELETE", "/admin/cache/local/a.jpg")
        assert response.status_code == 404
        assert "no result cache is configured" in response.json()["detail"]
        assert "No result cache is configured." in admin(server, "GET", "/admin/").text
    finally:
        server.stop()


def test_an_unusable_cache_folder_is_logged_and_the_server_serves(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    server = start_server(tmp_path / "server", settings(tmp_path / "file" / "cache"))
    try:
        assert get(server, "/media/local/" + next(p.name for p in (PROJECT_DIR / "media").iterdir())).status_code == 200
        document = admin(server, "GET", "/admin/cache").json()
        assert "cannot use the cache folder" in document["tiers"][0]["error"]
        assert "result cache: disk start failed, serving without it: cannot use the cache folder" in server.log()
    finally:
        server.stop()
