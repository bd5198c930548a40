"""The result cache's tiers in-process, on a real folder and a real S3 server (moto): lookup
order and fills, single flight, the source cache, purge, and failing tiers served around."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from conftest import PROJECT_DIR, free_port
from mediasrv import ByteRange, ContentRange, ObjectInfo
from mediasrv.cache import ResultCache, ResultStore, StoredResult
from mediasrv.cache.disk import DiskSettings, DiskStore
from mediasrv.cache.metrics import CacheMetrics
from mediasrv_s3 import S3Store, S3StoreSettings
from s3_server import MotoServer, result_store_table

BODY = os.urandom(20_000)
VARIANT = '"derived-1"'


class Renders:
    """A render function that counts its calls and takes ``delay`` seconds."""

    def __init__(self, body: bytes = BODY, delay: float = 0.0) -> None:
        self.body = body
        self.delay = delay
        self.calls = 0

    async def __call__(self) -> StoredResult:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return StoredResult.whole(self.body, "image/webp", VARIANT, {"format": "webp"})


def make_cache(*stores: ResultStore) -> tuple[ResultCache, CollectorRegistry]:
    registry = CollectorRegistry()
    return ResultCache(list(stores), CacheMetrics(registry), lock_timeout=5, log_interval=60), registry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def store_settings(endpoint_url: str, bucket: str, **extra: object) -> S3StoreSettings:
    return S3StoreSettings.model_validate(result_store_table(endpoint_url, bucket, **extra))


def disk(path: Path, **extra: object) -> DiskStore:
    return DiskStore(DiskSettings.model_validate({"path": path, **extra}))


@pytest.fixture
def bucket(moto: MotoServer, request: pytest.FixtureRequest) -> str:
    name = f"rc-{request.node.name.replace('_', '-')[:40].lower()}".rstrip("-")
    moto.client().create_bucket(Bucket=name)
    return name


@pytest_asyncio.fixture
async def started() -> AsyncIterator[Callable[[ResultCache], object]]:
    caches: list[ResultCache] = []

    async def start(cache: ResultCache) -> ResultCache:
        await cache.start()
        caches.append(cache)
        return cache

    yield start
    for cache in caches:
        await cache.stop()


@pytest.mark.asyncio
async def test_a_variant_is_rendered_once_then_served_from_disk(tmp_path: Path, started: Callable) -> None:
    cache, registry = make_cache(disk(tmp_path))
    await started(cache)
    render = Renders()
    first = await cache.result("photos", "a.jpg", VARIANT, None, render)
    second = await cache.result("photos", "a.jpg", VARIANT, None, render)
    assert first.body == second.body == BODY
    assert render.calls == 1
    assert sample(registry, "mediasrv_result_cache_requests_total", tier="disk", result="miss") == 1
    assert sample(registry, "mediasrv_result_cache_requests_total", tier="disk", result="hit") == 1
    assert sample(registry, "mediasrv_result_cache_bytes", tier="disk") > len(BODY)


@pytest.mark.asyncio
async def test_s3_hit_fills_the_disk_of_another_instance(
    tmp_path: Path, moto: MotoServer, bucket: str, started: Callable
) -> None:
    one, _ = make_cache(disk(tmp_path / "one"), S3Store(store_settings(moto.endpoint_url, bucket)))
    two, registry = make_cache(disk(tmp_path / "two"), S3Store(store_settings(moto.endpoint_url, bucket)))
    await started(one)
    await started(two)
    render = Renders()
    await one.result("photos", "a.jpg", VARIANT, None, render)
    found = await two.result("photos", "a.jpg", VARIANT, None, render)
    assert found.body == BODY and render.calls == 1
    assert sample(registry, "mediasrv_result_cache_requests_total", tier="s3", result="hit") == 1
    again = await two.result("photos", "a.jpg", VARIANT, None, render)
    assert again.body == BODY
    assert sample(registry, "mediasrv_result_cache_requests_total", tier="disk", result="hit") == 1  # filled


@pytest.mark.asyncio
async def test_identical_concurrent_requests_wait_for_one_render(tmp_path: Path, started: Callable) -> None:
    cache, registry = make_cache(disk(tmp_path))
    await started(cache)
    render = Renders(delay=0.2)
    results = await asyncio.gather(*(cache.result("photos", "a.jpg", VARIANT, None, render) for _ in range(10)))
    assert render.calls == 1
    assert {result.body for result in results} == {BODY}
    assert sample(registry, "mediasrv_coalesced_requests_total") == 9
    assert cache.coalesced == 9


@pytest.mark.asyncio
async def test_a_leaving_caller_does_not_cancel_the_render_for_the_others(tmp_path: Path, started: Callable) -> None:
    cache, _ = make_cache(disk(tmp_path))
    await started(cache)
    render = Renders(delay=0.3)
    leaver = asyncio.ensure_future(cache.result("photos", "a.jpg", VARIANT, None, render))
    stayer = asyncio.ensure_future(cache.result("photos", "a.jpg", VARIANT, None, render))
    await asyncio.sleep(0.05)
    leaver.cancel()
    assert (await stayer).body == BODY
    assert render.calls == 1
    assert (await cache.result("photos", "a.jpg", VARIANT, None, render)).body == BODY  # and it was stored


@pytest.mark.asyncio
async def test_a_render_failure_reaches_every_waiter_and_is_not_cached(tmp_path: Path, started: Callable) -> None:
    cache, _ = make_cache(disk(tmp_path))
    await started(cache)
    calls = 0

    async def failing() -> StoredResult:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        raise ValueError("undecodable")

    outcomes = await asyncio.gather(
        *(cache.result("photos", "a.jpg", VARIANT, None, failing) for _ in range(3)), return_exceptions=True
    )
    assert [type(outcome) for outcome in outcomes] == [ValueError] * 3
    assert calls == 1
    assert (await cache.result("photos", "a.jpg", VARIANT, None, Renders())).body == BODY


@pytest.mark.asyncio
async def test_ranges_are_cut_from_disk_and_read_as_ranges_from_s3_alone(
    tmp_path: Path, moto: MotoServer, bucket: str, started: Callable
) -> None:
    with_disk, _ = make_cache(disk(tmp_path))
    await started(with_disk)
    await with_disk.result("photos", "a.jpg", VARIANT, None, Renders())
    part = await with_disk.result("photos", "a.jpg", VARIANT, ByteRange(suffix=100), Renders())
    assert (part.body, part.content_range) == (BODY[-100:], ContentRange(len(BODY) - 100, len(BODY) - 1, len(BODY)))

    s3_only, _ = make_cache(S3Store(store_settings(moto.endpoint_url, bucket)))
    await started(s3_only)
    await s3_only.result("photos", "a.jpg", VARIANT, None, Renders())
    part = await s3_only.result("photos", "a.jpg", VARIANT, ByteRange(10, 19), Renders())
    assert (part.body, part.content_range) == (BODY[10:20], ContentRange(10, 19, len(BODY)))


@pytest.mark.asyncio
async def test_failing_tiers_are_served_around_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, started: Callable
) -> None:
    (tmp_path / "file").write_text("not a folder")
    down = S3Store(store_settings(f"http://127.0.0.1:{free_port()}", "cache", timeout=0.5))
    cache, registry = make_cache(disk(tmp_path / "file" / "cache"), down)
    with caplog.at_level(logging.WARNING, "mediasrv"):
        await started(cache)
        render = Renders()
        for _ in range(3):
            assert (await cache.result("photos", "a.jpg", VARIANT, None, render)).body == BODY
    assert render.calls == 3
    messages = [record.getMessage() for record in caplog.records]
    assert sum("disk get failed" in message for message in messages) == 1
    assert sum("s3 get failed" in message for message in messages) == 1
    assert sum("s3 put failed" in message for message in messages) == 1
    assert sample(registry, "mediasrv_result_cache_errors_total", tier="s3", operation="get") == 3


@pytest.mark.asyncio
async def test_a_corrupt_disk_entry_is_rendered_again_not_served(tmp_path: Path, started: Callable) -> None:
    cache, _ = make_cache(disk(tmp_path))
    await started(cache)
    await cache.result("photos", "a.jpg", VARIANT, None, Renders())
    [path] = [p for p in (tmp_path / "results").rglob("*") if p.is_file() and ".tmp" not in p.parts]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    render = Renders()
    assert (await cache.result("photos", "a.jpg", VARIANT, None, render)).body == BODY
    assert render.calls == 1


@pytest.mark.asyncio
async def test_purge_drops_a_sources_variants_from_every_tier(
    tmp_path: Path, moto: MotoServer, bucket: str, started: Callable
) -> None:
    cache, _ = make_cache(disk(tmp_path), S3Store(store_settings(moto.endpoint_url, bucket)))
    await started(cache)
    for variant in ('"w100"', '"w200"'):
        await cache.result("photos", "a.jpg", variant, None, Renders())
    purged, failed = await cache.purge("photos", "a.jpg")
    assert (purged, failed) == ({"disk": 2, "s3": 2}, {})
    render = Renders()
    await cache.result("photos", "a.jpg", '"w100"', None, render)
    assert render.calls == 1
    stats = await cache.stats()
    assert [(tier["name"], tier["entries"]) for tier in stats["tiers"]] == [("disk", 1), ("s3", 1)]


@pytest.mark.asyncio
async def test_the_source_cache_reads_an_original_once_per_etag(tmp_path: Path, started: Callable) -> None:
    cache, registry = make_cache(disk(tmp_path))
    await started(cache)
    fetches = 0
    original = os.urandom(200_000)

    async def fetch() -> bytes:
        nonlocal fetches
        fetches += 1
        await asyncio.sleep(0.05)
        return original

    info = ObjectInfo(size=len(original), content_type="image/jpeg", etag='"src-1"')
    bodies = await asyncio.gather(*(cache.source("photos", "a.jpg", info, fetch) for _ in range(5)))
    assert bodies == [original] * 5 and fetches == 1
    assert await cache.source("photos", "a.jpg", info, fetch) == original and fetches == 1
    changed = ObjectInfo(size=len(original), content_type="image/jpeg", etag='"src-2"')
    await cache.source("photos", "a.jpg", changed, fetch)
    assert fetches == 2
    assert sample(registry, "mediasrv_result_cache_requests_total", tier="source", result="hit") == 1


RENDER_SCRIPT = """
import asyncio, sys, time
from prometheus_client import CollectorRegistry
from mediasrv.cache import ResultCache, StoredResult
from mediasrv.cache.disk import DiskSettings, DiskStore
from mediasrv.cache.metrics import CacheMetrics

async def main() -> None:
    cache = ResultCache([DiskStore(DiskSettings(path=sys.argv[1]))], CacheMetrics(CollectorRegistry()))
    await cache.start()

    async def render() -> StoredResult:
        with open(sys.argv[2], "a") as log:
            log.write("rendered\\n")
        await asyncio.sleep(0.5)
        return StoredResult.whole(b"the variant", "image/webp", '"v"')

    while time.time() < float(sys.argv[3]):  # both processes ask at the same moment
        await asyncio.sleep(0.001)
    found = await cache.result("photos", "a.jpg", '"v"', None, render)
    print(found.body.decode())
    await cache.stop()

asyncio.run(main())
"""


def test_two_processes_sharing_a_folder_render_a_variant_once(tmp_path: Path) -> None:
    import time

    log = tmp_path / "renders.log"
    at = str(time.time() + 1.5)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RENDER_SCRIPT, str(tmp_path / "cache"), str(log), at],
            stdout=subprocess.PIPE,
            cwd=PROJECT_DIR,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=30)[0] for process in processes]
    assert outputs == [b"the variant\n"] * 2
    assert log.read_text() == "rendered\n"
