"""The result cache on the render path, over a real uvicorn: each variant rendered once (the
render counter), served again from disk with its ETag, Range and 304; the source cache; a
corrupt file re-rendered; a purge; and two instances sharing one S3 store (real moto)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cached_render import LOOKUPS, renders, settings, size_of
from conftest import Server, get, scrape, start_server, value
from images import jpeg
from s3_server import MotoServer, result_store_table, toml_table

# These tests watch the result cache's own tiers: a repeated request must reach them, not be
# answered from memory (test_small_variants covers that).
TIERS_ONLY = "\n[small_objects]\nmax_bytes = 0\n"


@dataclass
class Site:
    server: Server
    media: Path
    cache: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("cache-render")
    media = root / "media"
    media.mkdir()
    for name in ("photo.jpg", "corrupt.jpg", "purged.jpg", "widths.jpg", "range.jpg"):
        (media / name).write_bytes(jpeg(800, 600))
    server = start_server(root / "server", settings(media, root / "cache", TIERS_ONLY))
    yield Site(server, media, root / "cache")
    server.stop()


def test_a_variant_is_rendered_once_and_then_served_from_the_disk_cache(site: Site) -> None:
    before = renders(site.server)
    first = get(site.server, "/media/local/photo.jpg?width=200")
    assert first.status_code == 200
    assert first.headers["content-type"] == "image/jpeg"
    assert size_of(first.content) == (200, 150)
    second = get(site.server, "/media/local/photo.jpg?width=200")
    assert second.status_code == 200
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers["content-length"] == str(len(first.content))
    assert renders(site.server) == before + 1
    assert value(scrape(site.server), LOOKUPS, tier="disk", result="hit") >= 1


def test_a_cached_variant_answers_ranges_and_304(site: Site) -> None:
    whole = get(site.server, "/media/local/range.jpg?width=300")
    before = renders(site.server)
    part = get(site.server, "/media/local/range.jpg?width=300", Range="bytes=100-199")
    assert part.status_code == 206
    assert part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    not_modified = get(site.server, "/media/local/range.jpg?width=300", **{"If-None-Match": whole.headers["etag"]})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert renders(site.server) == before


def test_ten_widths_read_the_original_once(site: Site) -> None:
    before = scrape(site.server)
    for width in range(100, 600, 50):
        response = get(site.server, f"/media/local/widths.jpg?width={width}")
        assert size_of(response.content)[0] == width
    after = scrape(site.server)

    def moved(result: str) -> float:
        return value(after, LOOKUPS, tier="source", result=result) - value(before, LOOKUPS, tier="source", result=result)

    assert (moved("miss"), moved("hit")) == (1, 9)


def test_a_corrupt_cache_file_is_rendered_again_never_served(site: Site) -> None:
    good = get(site.server, "/media/local/corrupt.jpg?width=120").content
    variants = [path for path in (site.cache / "results").rglob("*") if path.is_file() and ".tmp" not in path.parts]
    corrupt = [path for path in variants if path.read_bytes().endswith(good)]
    assert len(corrupt) == 1
    data = bytearray(corrupt[0].read_bytes())
    data[-10] ^= 0xFF
    corrupt[0].write_bytes(bytes(data))
    before = renders(site.server)
    again = get(site.server, "/media/local/corrupt.jpg?width=120")
    assert again.status_code == 200
    assert hashlib.sha256(again.content).digest() == hashlib.sha256(good).digest()
    assert renders(site.server) == before + 1
    assert "corrupt (length or digest wrong); removed" in site.server.log()


def test_a_purged_source_is_rendered_again(site: Site) -> None:
    get(site.server, "/media/local/purged.jpg?width=150")
    get(site.server, "/media/local/purged.jpg?width=160")
    # No [admin] token: a loopback client may purge.
    response = httpx.delete(site.server.url + "/admin/cache/local/purged.jpg", timeout=10)
    assert response.json()["purged"] == {"disk": 3}  # two variants and the kept original
    before = renders(site.server)
    assert get(site.server, "/media/local/purged.jpg?width=150").status_code == 200
    assert renders(site.server) == before + 1


def test_two_instances_sharing_an_s3_store_render_a_variant_once(tmp_path: Path, moto: MotoServer) -> None:
    moto.client().create_bucket(Bucket="shared-variants")
    media = tmp_path / "media"
    media.mkdir()
    (media / "shared.jpg").write_bytes(jpeg(640, 480))
    store = toml_table("cache.s3", result_store_table(moto.endpoint_url, "shared-variants"))
    one = start_server(tmp_path / "one", settings(media, tmp_path / "cache-one", store + TIERS_ONLY))
    two = start_server(tmp_path / "two", settings(media, tmp_path / "cache-two", store + TIERS_ONLY))
    try:
        rendered = get(one, "/media/local/shared.jpg?width=320&format=webp")
        assert rendered.status_code == 200 and rendered.content[8:12] == b"WEBP"
        served = get(two, "/media/local/shared.jpg?width=320&format=webp")
        assert served.content == rendered.content
        assert served.headers["etag"] == rendered.headers["etag"]
        assert (renders(one), renders(two)) == (1, 0)
        assert value(scrape(two), LOOKUPS, tier="s3", result="hit") == 1
        get(two, "/media/local/shared.jpg?width=320&format=webp")
        assert value(scrape(two), LOOKUPS, tier="disk", result="hit") == 1  # the S3 hit filled its disk
    finally:
        one.stop()
        two.stop()


def test_two_workers_sharing_the_folder_render_a_burst_once(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "burst.jpg").write_bytes(jpeg(800, 600))
    server = start_server(tmp_path / "server", settings(media, tmp_path / "cache", TIERS_ONLY), args=("--workers", "2"))
    try:
        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(lambda _: get(server, "/media/local/burst.jpg?width=500"), range(16)))
        assert {response.status_code for response in responses} == {200}
        assert len({response.content for response in responses}) == 1
        assert renders(server) == 1  # summed over both workers
        samples = scrape(server)
        waited = value(samples, "mediasrv_coalesced_requests_total")
        from_disk = value(samples, LOOKUPS, tier="disk", result="hit")
        assert waited + from_disk == 15  # the others waited in their worker, or for the other's lock
    finally:
        server.stop()
