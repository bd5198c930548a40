"""Small objects answered from memory ([small_objects]) over a real server: the same response
as from disk, never stale (a file changed in place, replaced or deleted is seen on the very next
request), bounded, and only for plain GETs of public backends."""

from __future__ import annotations

import json
import os
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_metrics import scrape, value

from conftest import PROJECT_DIR, Server, get, start_server, wait_until
from mediasrv.objectcache import ENTRY_OVERHEAD, CachedObject, EntryKey, SmallObjectCache, SmallObjectSettings
from mediasrv.signing import sign_url

SETTLE_SECONDS = 2.0  # LocalBackend.settle_seconds: younger files are never kept
KEY = "k" * 40
SMALL = 4096


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("small-objects")
    for name in ("in-place.jpg", "renamed.jpg", "deleted.jpg", "logged.jpg", "ranged.jpg", "signed.jpg"):
        (root / name).write_bytes(os.urandom(SMALL))
    (root / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (root / "big.bin").write_bytes(os.urandom(200 * 1024))  # over max_object_bytes
    time.sleep(SETTLE_SECONDS + 0.2)  # a file's ctime can't be set back: let them all settle
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, media_dir: Path) -> Iterator[Server]:
    settings = f"""
[signing]
keys = ["{KEY}"]

[small_objects]
max_object_bytes = 65536

[backends.local]
kind = "local"
root = "{media_dir}"
cache_control = "public, max-age=60"

[backends.private]
kind = "local"
root = "{media_dir}"
access = "signed"
"""
    server = start_server(tmp_path_factory.mktemp("small-objects-server"), settings)
    yield server
    server.stop()


def opens(server: Server, backend: str = "local") -> float:
    """How many times the backend was asked to open (or stat) an object: a memory answer is not."""
    return value(scrape(server), "mediasrv_upstream_open_seconds_count", backend=backend)


def test_a_kept_object_is_answered_from_memory_with_the_same_response(server: Server, media_dir: Path) -> None:
    first = get(server, "/media/local/logged.jpg")
    before = opens(server)
    second = get(server, "/media/local/logged.jpg")
    assert opens(server) == before  # the second came from memory
    assert first.status_code == second.status_code == 200
    assert second.content == first.content == (media_dir / "logged.jpg").read_bytes()
    without_date = {name: v for name, v in first.headers.items() if name != "date"}
    assert {name: v for name, v in second.headers.items() if name != "date"} == without_date
    assert second.headers["x-content-type-options"] == "nosniff"
    assert second.headers["content-length"] == str(SMALL)
    assert second.headers["cache-control"] == "public, max-age=60"


def test_a_file_changed_in_place_is_seen_on_the_next_request(server: Server, media_dir: Path) -> None:
    path = media_dir / "in-place.jpg"
    get(server, "/media/local/in-place.jpg")
    kept = get(server, "/media/local/in-place.jpg")
    assert kept.content == path.read_bytes()
    before = path.stat()
    new = os.urandom(SMALL)
    with path.open("r+b") as file:  # same inode, same size, mtime put back: only ctime tells
        file.write(new)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    changed = get(server, "/media/local/in-place.jpg")
    assert changed.status_code == 200
    assert changed.content == new


def test_a_file_replaced_by_rename_is_seen_on_the_next_request(server: Server, media_dir: Path) -> None:
    get(server, "/media/local/renamed.jpg")
    old = get(server, "/media/local/renamed.jpg")
    new = os.urandom(SMALL)
    (media_dir / "renamed.jpg.tmp").write_bytes(new)
    os.replace(media_dir / "renamed.jpg.tmp", media_dir / "renamed.jpg")
    replaced = get(server, "/media/local/renamed.jpg")
    assert replaced.content == new != old.content
    assert replaced.headers["etag"] != old.headers["etag"]


def test_a_deleted_file_is_not_found_on_the_next_request(server: Server, media_dir: Path) -> None:
    get(server, "/media/local/deleted.jpg")
    assert get(server, "/media/local/deleted.jpg").status_code == 200
    (media_dir / "deleted.jpg").unlink()
    gone = get(server, "/media/local/deleted.jpg")
    assert gone.status_code == 404
    assert set(gone.json()) == {"detail"}
    assert gone.headers["x-content-type-options"] == "nosniff"


def test_an_answer_from_memory_is_logged_and_counted(server: Server) -> None:
    samples = scrape(server)
    requests = value(samples, "mediasrv_requests_total", backend="local", method="GET", status="200")
    sent = value(samples, "mediasrv_sent_bytes_total", backend="local")
    for _ in range(3):
        assert get(server, "/media/local/ranged.jpg").status_code == 200
    samples = scrape(server)
    assert value(samples, "mediasrv_requests_total", backend="local", method="GET", status="200") == requests + 3
    assert value(samples, "mediasrv_sent_bytes_total", backend="local") == sent + 3 * SMALL

    def lines() -> list[dict[str, object]]:
        found = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
        return [line for line in found if line["path"] == "/media/local/ranged.jpg"]

    assert wait_until(lambda: len(lines()) >= 3)
    last = lines()[-1]
    assert (last["backend"], last["key"], last["status"], last["bytes"]) == ("local", "ranged.jpg", 200, SMALL)
    assert last["outcome"] == "complete"


def test_ranges_and_conditions_on_a_kept_object_are_answered_exactly(server: Server, media_dir: Path) -> None:
    body = (media_dir / "ranged.jpg").read_bytes()
    etag = get(server, "/media/local/ranged.jpg").headers["etag"]
    partial = get(server, "/media/local/ranged.jpg", Range="bytes=100-199")
    assert partial.status_code == 206
    assert partial.content == body[100:200]
    assert partial.headers["content-range"] == f"bytes 100-199/{SMALL}"
    assert get(server, "/media/local/ranged.jpg", **{"If-None-Match": etag}).status_code == 304
    assert get(server, "/media/local/ranged.jpg", **{"If-Match": '"other"'}).status_code == 412
    assert get(server, "/media/local/ranged.jpg", Range=f"bytes={SMALL}-").status_code == 416


def test_active_content_from_memory_keeps_its_sandbox(server: Server) -> None:
    get(server, "/media/local/drawing.svg")
    before = opens(server)
    kept = get(server, "/media/local/drawing.svg")
    assert opens(server) == before
    assert kept.headers["content-type"] == "image/svg+xml"
    assert kept.headers["content-security-policy"] == "sandbox"
    assert kept.headers["x-content-type-options"] == "nosniff"


def test_an_object_over_max_object_bytes_is_read_each_time(server: Server) -> None:
    get(server, "/media/local/big.bin")
    before = opens(server)
    assert len(get(server, "/media/local/big.bin").content) == 200 * 1024
    assert opens(server) == before + 1


def test_a_signed_backend_checks_every_request(server: Server, media_dir: Path) -> None:
    signed = sign_url("/media/private/signed.jpg", KEY)
    for _ in range(2):
        assert get(server, signed).content == (media_dir / "signed.jpg").read_bytes()
    refused = get(server, "/media/private/signed.jpg")
    assert refused.status_code == 403
    assert refused.json() == {"detail": refused.json()["detail"]}


def test_invalid_keys_and_other_methods_still_get_their_errors(server: Server) -> None:
    assert get(server, "/media/local/%2e%2e/etc/passwd").status_code == 400
    assert get(server, "/media/nope/logged.jpg").status_code == 404
    refused = httpx.post(server.url + "/media/local/logged.jpg", timeout=10)
    assert refused.status_code == 405
    assert refused.headers["x-content-type-options"] == "nosniff"


def test_the_cache_stays_under_max_bytes_dropping_the_least_recently_used() -> None:
    def entry(size: int) -> CachedObject:
        return CachedObject("local", "k", ("v", size), [(b"content-length", str(size).encode())], b"x" * size)

    def url(name: str) -> EntryKey:
        return f"/media/local/{name}".encode(), b"", b""

    cost = entry(1000).cost
    assert cost > 1000 + ENTRY_OVERHEAD - 1
    cache = SmallObjectCache(max_bytes=3 * cost, max_object_bytes=1000)
    for name in ("a", "b", "c"):
        cache.put(url(name), entry(1000))
    assert cache.get(url("a")) is not None  # now the most recently used
    cache.put(url("d"), entry(1000))
    assert cache.get(url("b")) is None
    assert all(cache.get(url(name)) is not None for name in ("a", "c", "d"))
    assert cache.size == 3 * cost <= cache.max_bytes
    cache.put(url("huge"), entry(4 * cost))  # bigger than the whole cache: not kept, nothing dropped
    assert cache.get(url("huge")) is None and len(cache) == 3
    cache.discard(url("a"))
    assert cache.size == 2 * cost and len(cache) == 2


def test_max_bytes_zero_turns_it_off(tmp_path: Path, media_dir: Path) -> None:
    settings = f'[small_objects]\nmax_bytes = 0\n\n[backends.local]\nkind = "local"\nroot = "{media_dir}"\n'
    server = start_server(tmp_path, settings)
    try:
        get(server, "/media/local/logged.jpg")
        before = opens(server)
        assert get(server, "/media/local/logged.jpg").status_code == 200
        assert opens(server) == before + 1
    finally:
        server.stop()


def test_a_file_younger_than_its_timestamps_granularity_is_not_kept(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    server = start_server(tmp_path, f'[backends.local]\nkind = "local"\nroot = "{tmp_path / "media"}"\n')
    try:
        for _ in range(5):  # a loaded machine may take longer than the settling time: try again
            (tmp_path / "media" / "fresh.jpg").write_bytes(os.urandom(SMALL))
            written = time.time()
            get(server, "/media/local/fresh.jpg")
            before = opens(server)
            get(server, "/media/local/fresh.jpg")
            after = opens(server)
            if time.time() - written < SETTLE_SECONDS:
                break
        assert after == before + 1  # read again: a second write this tick could keep every timestamp
    finally:
        server.stop()


def test_readme_and_settings_toml_show_every_small_objects_key_with_its_default() -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    block = next(part for part in readme.split("```toml\n") if part.startswith("plugins = []"))
    for text in (block.split("```")[0], (PROJECT_DIR / "settings.toml").read_text()):
        table = tomllib.loads(text)["small_objects"]
        assert table == SmallObjectSettings().model_dump()
