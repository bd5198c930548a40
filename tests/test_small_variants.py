"""Rendered variants and ``?info=json`` answers kept in memory ([small_objects]) over a real
server: answered without a render or a result-cache lookup, one entry per Accept header for
``format=auto``, never stale (a changed source, a purge, an expired signature)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from cached_render import LOOKUPS, RENDERS, settings, size_of
from conftest import Server, get, scrape, start_server
from images import image_format, jpeg
from mediasrv.cache.cache import ResultCache
from mediasrv.cache.disk import DiskSettings, DiskStore
from mediasrv.cache.metrics import CacheMetrics
from mediasrv.objectcache import entry_key
from mediasrv.signing import sign_url

SETTLE_SECONDS = 2.0  # LocalBackend.settle_seconds: younger sources are never kept
KEY = "v" * 40
NAMES = ("kept.jpg", "auto.jpg", "changed.jpg", "purged.jpg", "info.jpg", "signed.jpg")


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("small-variants-media")
    for name in NAMES:
        (root / name).write_bytes(jpeg(800, 600))
    time.sleep(SETTLE_SECONDS + 0.2)  # a file's ctime can't be set back: let them all settle
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, media: Path) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("small-variants")
    extra = f"""
[signing]
keys = ["{KEY}"]

[backends.private]
kind = "local"
root = "{media}"
access = "signed"
"""
    server = start_server(root, settings(media, root / "cache", extra))
    yield server
    server.stop()


def work_done(server: Server) -> tuple[float, float]:
    """Renders run and result-cache lookups made, every tier: an answer from memory adds neither."""
    samples = scrape(server)
    renders = sum(v for (name, _), v in samples.items() if name == RENDERS)
    lookups = sum(v for (name, _), v in samples.items() if name == LOOKUPS)
    return renders, lookups


def same_headers(one: httpx.Response, other: httpx.Response) -> bool:
    def without_date(response: httpx.Response) -> dict[str, str]:
        return {name: value for name, value in response.headers.items() if name != "date"}

    return without_date(one) == without_date(other)


def test_a_variant_is_answered_from_memory_without_a_render_or_a_lookup(server: Server) -> None:
    first = get(server, "/media/local/kept.jpg?width=200")
    assert first.status_code == 200
    before = work_done(server)
    second = get(server, "/media/local/kept.jpg?width=200")
    assert work_done(server) == before
    assert second.status_code == 200
    assert second.content == first.content
    assert size_of(second.content) == (200, 150)
    assert same_headers(first, second)
    assert second.headers["x-content-type-options"] == "nosniff"


def test_format_auto_is_kept_once_per_accept_header(server: Server) -> None:
    url = "/media/local/auto.jpg?width=160&format=auto"
    accepts = {"image/avif,image/webp,*/*": "avif", "image/webp,*/*": "webp", "*/*": "jpeg"}
    firsts = {accept: get(server, url, Accept=accept) for accept in accepts}
    before = work_done(server)
    for accept, expected in accepts.items():
        again = get(server, url, Accept=accept)
        assert image_format(again.content) == expected
        assert again.content == firsts[accept].content
        assert again.headers["vary"] == "Accept"
    assert work_done(server) == before


def test_a_changed_source_is_rendered_anew_on_the_next_request(server: Server, media: Path) -> None:
    url = "/media/local/changed.jpg?width=200"
    get(server, url)
    assert size_of(get(server, url).content) == (200, 150)
    (media / "changed.jpg.tmp").write_bytes(jpeg(800, 400))
    os.replace(media / "changed.jpg.tmp", media / "changed.jpg")
    renders, _ = work_done(server)
    changed = get(server, url)
    assert changed.status_code == 200
    assert size_of(changed.content) == (200, 100)
    assert work_done(server)[0] == renders + 1


def test_a_purge_drops_the_variants_kept_in_memory(server: Server) -> None:
    url = "/media/local/purged.jpg?width=150"
    kept = get(server, url)
    get(server, url)
    # No [admin] token: a loopback client may purge.
    assert httpx.delete(server.url + "/admin/cache/local/purged.jpg", timeout=10).status_code == 200
    renders, _ = work_done(server)
    again = get(server, url)
    assert again.status_code == 200
    assert size_of(again.content) == size_of(kept.content)
    assert size_of(kept.content)[0] == 150
    assert work_done(server)[0] == renders + 1  # rendered again, not answered from memory


def test_an_info_answer_is_kept_too(server: Server) -> None:
    url = "/media/local/info.jpg?info=json&fields=width,height,format"
    first = get(server, url)
    before = work_done(server)
    second = get(server, url)
    assert work_done(server) == before
    assert second.json() == first.json() == {"width": 800, "height": 600, "format": "jpeg"}


def test_a_signed_variant_is_refused_from_memory_once_it_expires(server: Server) -> None:
    signed = sign_url("/media/private/signed.jpg?width=120", KEY, expires=2)
    expires = int(signed.split("exp=")[1].split("&")[0])
    first = get(server, signed)
    assert first.status_code == 200
    before = work_done(server)
    assert get(server, signed).content == first.content
    assert work_done(server) == before  # from memory
    time.sleep(max(0.0, expires - time.time()) + 1.1)
    expired = get(server, signed)
    assert expired.status_code == 403
    assert "expired" in expired.json()["detail"]
    assert get(server, "/media/private/signed.jpg?width=120").status_code == 403


def scope(query: bytes = b"", method: str = "GET", **headers: str) -> dict[str, object]:
    listed = [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return {"method": method, "raw_path": b"/media/local/a.jpg", "query_string": query, "headers": listed}


def test_the_entry_key_is_the_url_and_the_accept_header_of_a_query() -> None:
    assert entry_key(scope(accept="image/webp")) == (b"/media/local/a.jpg", b"", b"")
    assert entry_key(scope(b"width=1", accept="image/webp")) == (b"/media/local/a.jpg", b"width=1", b"image/webp")
    assert entry_key(scope(b"width=1")) == (b"/media/local/a.jpg", b"width=1", b"")


def test_no_entry_key_for_an_answer_that_depends_on_more() -> None:
    assert entry_key(scope(method="HEAD")) is None
    assert entry_key(scope(range="bytes=0-1")) is None
    assert entry_key(scope(if_none_match='"x"')) is None
    two_accepts = scope(b"format=auto")
    two_accepts["headers"] = [(b"accept", b"image/avif"), (b"accept", b"image/webp")]
    assert entry_key(two_accepts) is None


def test_a_purge_through_one_disk_store_changes_the_marker_every_sharer_reads(tmp_path: Path) -> None:
    one, other = (DiskStore(DiskSettings.model_validate({"path": tmp_path})) for _ in range(2))

    async def purge_twice() -> list[object]:
        await one.start()
        await other.start()
        seen = [other.purge_marker()]
        for _ in range(2):
            await one.purge("local/a.jpg")
            seen.append(other.purge_marker())
        return seen

    before, after_one, after_two = asyncio.run(purge_twice())
    assert before is None
    assert after_one is not None and after_two is not None and after_one != after_two


def test_the_purge_marker_starts_again_as_a_new_file_past_its_size(tmp_path: Path) -> None:
    store = DiskStore(DiskSettings.model_validate({"path": tmp_path}))
    store.max_marker_bytes = 3

    async def purge_five_times() -> list[object]:
        await store.start()
        seen = []
        for _ in range(5):
            await store.purge("local/a.jpg")
            seen.append(store.purge_marker())
        return seen

    assert len(set(asyncio.run(purge_five_times()))) == 5
    assert (tmp_path / "purges").stat().st_size <= 3


def test_a_purge_by_another_worker_changes_the_epoch_here_within_the_interval(tmp_path: Path) -> None:
    def worker() -> ResultCache:
        store = DiskStore(DiskSettings.model_validate({"path": tmp_path}))
        return ResultCache([store], CacheMetrics(CollectorRegistry()))

    here, there = worker(), worker()

    async def purge_there() -> tuple[object, object, object]:
        await here.start()
        await there.start()
        before = here.purge_epoch()
        await there.purge("local", "a.jpg")
        soon = here.purge_epoch()  # read less than marker_interval ago: not yet
        here.marker_interval = 0
        return before, soon, here.purge_epoch()

    before, soon, later = asyncio.run(purge_there())
    assert soon == before
    assert later != before
