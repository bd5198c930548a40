"""The media endpoint over a real socket, against the local disk backend."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import httpx
import pytest

from conftest import PROJECT_DIR, Server, abort_after_first_bytes, get, sha256, start_server, wait_until

BIG_SIZE = 3 * 1024 * 1024 + 123  # several chunks, not a multiple of the chunk size
SPARSE_SIZE = 256 * 1024 * 1024  # costs no disk; reading it costs time the test can measure
CHUNK_SIZE = 256 * 1024


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    (root / "big.bin").write_bytes(os.urandom(BIG_SIZE))
    (root / "empty.txt").write_bytes(b"")
    (root / "nested" / "deeper").mkdir(parents=True)
    (root / "nested" / "deeper" / "photo.jpg").write_bytes((PROJECT_DIR / "media" / "landscape.jpg").read_bytes())
    (root / "page.html").write_text("<script>alert(1)</script>")
    (root / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (root / "noextension").write_bytes(b"\x00\x01")
    (root / ".secret").write_text("hidden")
    (root / "with space ü.txt").write_text("unicode")
    (root / "sparse.bin").touch()
    os.truncate(root / "sparse.bin", SPARSE_SIZE)
    os.mkfifo(root / "pipe")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "passwords.txt").write_text("top secret outside the root")
    (root / "escape.txt").symlink_to(outside / "passwords.txt")
    (root / "escape-dir").symlink_to(outside)
    (root / "inside-link.jpg").symlink_to(root / "nested" / "deeper" / "photo.jpg")
    (root / "inside-dir").symlink_to(root / "nested")
    return root


@pytest.fixture(scope="module")
def second_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("second")
    (root / "only-here.txt").write_text("from the second local backend")
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, media_dir: Path, second_dir: Path) -> Iterator[Server]:
    settings = f"""
[backends.local]
kind = "local"
root = "{media_dir}"
cache_control = "public, max-age=60"
chunk_size = {CHUNK_SIZE}

[backends.second]
kind = "local"
root = "{second_dir}"

[backends.gone]
kind = "local"
root = "./does-not-exist"
"""
    server = start_server(tmp_path_factory.mktemp("server"), settings)
    yield server
    server.stop()


# --- whole objects --------------------------------------------------------------------


def test_get_full_object_bytes_identical(server: Server, media_dir: Path) -> None:
    response = get(server, "/media/local/big.bin")
    assert response.status_code == 200
    assert sha256(response.content) == sha256((media_dir / "big.bin").read_bytes())
    assert response.headers["content-length"] == str(BIG_SIZE)
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "public, max-age=60"


def test_get_nested_key_and_content_type_guessed(server: Server) -> None:
    response = get(server, "/media/local/nested/deeper/photo.jpg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content[:2] == b"\xff\xd8"


def test_get_unicode_key_percent_encoded(server: Server) -> None:
    response = get(server, "/media/local/with%20space%20%C3%BC.txt")
    assert response.status_code == 200
    assert response.text == "unicode"


def test_get_unknown_extension_is_octet_stream(server: Server) -> None:
    response = get(server, "/media/local/noextension")
    assert response.headers["content-type"] == "application/octet-stream"


def test_get_empty_object(server: Server) -> None:
    response = get(server, "/media/local/empty.txt")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "0"


def test_get_etag_and_last_modified_from_the_file(server: Server, media_dir: Path) -> None:
    response = get(server, "/media/local/big.bin")
    stat = (media_dir / "big.bin").stat()
    assert response.headers["etag"] == f'"{stat.st_ino:x}-{stat.st_size:x}-{stat.st_mtime_ns:x}"'
    last_modified = parsedate_to_datetime(response.headers["last-modified"])
    assert int(last_modified.timestamp()) == int(stat.st_mtime)


@pytest.mark.parametrize("key", ["page.html", "drawing.svg"])
def test_active_content_is_sandboxed(server: Server, key: str) -> None:
    response = get(server, f"/media/local/{key}")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_images_are_not_sandboxed(server: Server) -> None:
    assert "content-security-policy" not in get(server, "/media/local/nested/deeper/photo.jpg").headers


def test_symlink_inside_the_root_is_served(server: Server) -> None:
    photo = get(server, "/media/local/nested/deeper/photo.jpg").content
    assert get(server, "/media/local/inside-link.jpg").content == photo
    assert get(server, "/media/local/inside-dir/deeper/photo.jpg").content == photo
    assert httpx.head(server.url + "/media/local/inside-dir/deeper/photo.jpg").headers["content-length"] == str(
        len(photo)
    )


def test_two_backends_of_one_kind_serve_their_own_roots(server: Server) -> None:
    assert get(server, "/media/second/only-here.txt").text == "from the second local backend"
    assert get(server, "/media/local/only-here.txt").status_code == 404
    assert get(server, "/media/second/big.bin").status_code == 404
    assert "cache-control" not in get(server, "/media/second/only-here.txt").headers


# --- HEAD -------------------------------------------------------------------------------


def test_head_has_headers_and_no_body(server: Server) -> None:
    status, headers, body = server.raw_get("/media/local/big.bin", method="HEAD")
    assert status == 200
    assert body == b""
    assert headers["content-length"] == str(BIG_SIZE)
    assert headers["etag"] == get(server, "/media/local/big.bin").headers["etag"]
    assert headers["accept-ranges"] == "bytes"


def test_head_ignores_range(server: Server) -> None:
    status, headers, _ = server.raw_get("/media/local/big.bin", {"Range": "bytes=0-9"}, method="HEAD")
    assert status == 200
    assert headers["content-length"] == str(BIG_SIZE)


def test_head_missing_is_404(server: Server) -> None:
    status, headers, _ = server.raw_get("/media/local/missing.jpg", method="HEAD")
    assert status == 404
    assert headers["x-content-type-options"] == "nosniff"


def test_head_conditional_not_modified(server: Server) -> None:
    etag = get(server, "/media/local/big.bin").headers["etag"]
    status, _, _ = server.raw_get("/media/local/big.bin", {"If-None-Match": etag}, method="HEAD")
    assert status == 304


# --- ranges -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=0-99", 0, 99),
        (f"bytes={BIG_SIZE - 10}-", BIG_SIZE - 10, BIG_SIZE - 1),
        ("bytes=-500", BIG_SIZE - 500, BIG_SIZE - 1),
        (f"bytes={CHUNK_SIZE - 5}-{3 * CHUNK_SIZE + 5}", CHUNK_SIZE - 5, 3 * CHUNK_SIZE + 5),
        (f"bytes=100-{BIG_SIZE * 2}", 100, BIG_SIZE - 1),
        (f"bytes=-{BIG_SIZE * 2}", 0, BIG_SIZE - 1),
    ],
)
def test_range_returns_exact_bytes(server: Server, media_dir: Path, header: str, first: int, last: int) -> None:
    data = (media_dir / "big.bin").read_bytes()
    response = get(server, "/media/local/big.bin", range=header)
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {first}-{last}/{BIG_SIZE}"
    assert response.headers["content-length"] == str(last - first + 1)
    assert response.content == data[first : last + 1]


@pytest.mark.parametrize("header", [f"bytes={BIG_SIZE}-", f"bytes={BIG_SIZE + 10}-{BIG_SIZE + 20}", "bytes=-0"])
def test_unsatisfiable_range_is_416(server: Server, header: str) -> None:
    response = get(server, "/media/local/big.bin", range=header)
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{BIG_SIZE}"
    assert response.json() == {"detail": "range not satisfiable"}


def test_any_range_of_an_empty_object_is_416(server: Server) -> None:
    response = get(server, "/media/local/empty.txt", range="bytes=0-")
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */0"


@pytest.mark.parametrize("header", ["bytes=5-2", "bytes=abc", "items=0-5", "bytes=", "bytes=--1", "bytes=0-1,5-6"])
def test_malformed_or_multiple_ranges_get_the_whole_object(server: Server, header: str) -> None:
    response = get(server, "/media/local/big.bin", range=header)
    assert response.status_code == 200
    assert len(response.content) == BIG_SIZE
    assert "content-range" not in response.headers


def test_if_range_with_current_etag_honours_range(server: Server) -> None:
    etag = get(server, "/media/local/big.bin").headers["etag"]
    response = get(server, "/media/local/big.bin", range="bytes=0-9", **{"if-range": etag})
    assert response.status_code == 206
    assert len(response.content) == 10


def test_if_range_with_current_date_honours_range(server: Server) -> None:
    last_modified = get(server, "/media/local/big.bin").headers["last-modified"]
    response = get(server, "/media/local/big.bin", range="bytes=0-9", **{"if-range": last_modified})
    assert response.status_code == 206


@pytest.mark.parametrize("validator", ['"stale-etag"', "Mon, 01 Jan 2001 00:00:00 GMT", 'W/"weak"'])
def test_if_range_with_stale_validator_sends_whole_object(server: Server, validator: str) -> None:
    response = get(server, "/media/local/big.bin", range="bytes=0-9", **{"if-range": validator})
    assert response.status_code == 200
    assert len(response.content) == BIG_SIZE


def test_if_range_stale_and_range_past_end_is_200_not_416(server: Server) -> None:
    response = get(server, "/media/local/big.bin", range=f"bytes={BIG_SIZE + 5}-", **{"if-range": '"stale"'})
    assert response.status_code == 200


# --- conditional requests -----------------------------------------------------------------


def test_if_none_match_current_is_304_without_body(server: Server) -> None:
    etag = get(server, "/media/local/big.bin").headers["etag"]
    status, headers, body = server.raw_get("/media/local/big.bin", {"If-None-Match": etag})
    assert status == 304
    assert body == b""
    assert headers["etag"] == etag
    assert headers["cache-control"] == "public, max-age=60"
    assert "content-length" not in headers or headers["content-length"] == "0"


def test_if_none_match_list_and_weak_form_is_304(server: Server) -> None:
    etag = get(server, "/media/local/big.bin").headers["etag"]
    assert get(server, "/media/local/big.bin", **{"if-none-match": f'"other", W/{etag}'}).status_code == 304


def test_if_none_match_other_is_200(server: Server) -> None:
    assert get(server, "/media/local/big.bin", **{"if-none-match": '"other"'}).status_code == 200


def test_if_modified_since_now_is_304(server: Server) -> None:
    now = format_datetime(datetime.now(UTC), usegmt=True)
    assert get(server, "/media/local/big.bin", **{"if-modified-since": now}).status_code == 304


def test_if_modified_since_long_ago_is_200(server: Server) -> None:
    assert (
        get(server, "/media/local/big.bin", **{"if-modified-since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 200
    )


def test_if_match_other_is_412(server: Server) -> None:
    response = get(server, "/media/local/big.bin", **{"if-match": '"other"'})
    assert response.status_code == 412
    assert response.json() == {"detail": "If-Match failed"}


def test_if_match_current_is_200(server: Server) -> None:
    etag = get(server, "/media/local/big.bin").headers["etag"]
    assert get(server, "/media/local/big.bin", **{"if-match": etag}).status_code == 200


def test_if_modified_since_beyond_year_9999_is_ignored(server: Server) -> None:
    response = get(server, "/media/local/empty.txt", **{"if-modified-since": "Fri, 31 Dec 9999 23:59:59 PST"})
    assert response.status_code == 200


# Issue 12: these took seconds to parse (quadratic regexes) and stalled every other request.
HOSTILE_BLANKS = 60_000  # fits in the default 64 KiB request head


@pytest.mark.parametrize(("name", "status"), [("If-None-Match", 200), ("If-Match", 412)])
def test_entity_tag_list_with_a_long_blank_run_is_answered_at_once(server: Server, name: str, status: int) -> None:
    value = "x" + " " * HOSTILE_BLANKS + "x"
    response = httpx.get(f"{server.url}/media/local/empty.txt", headers={name: value}, timeout=5)
    assert response.status_code == status


def test_range_with_a_long_blank_run_is_answered_at_once(server: Server, media_dir: Path) -> None:
    value = "bytes=0-" + " " * HOSTILE_BLANKS + "x"
    response = httpx.get(f"{server.url}/media/local/big.bin", headers={"Range": value}, timeout=5)
    assert response.status_code == 200  # malformed: the whole object
    assert sha256(response.content) == sha256((media_dir / "big.bin").read_bytes())


def test_if_unmodified_since_long_ago_is_412(server: Server) -> None:
    response = get(server, "/media/local/big.bin", **{"if-unmodified-since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert response.status_code == 412


# --- keys that must not be served ------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/media/local/../settings.toml",
        "/media/local/nested/../../outside",
        "/media/local/%2e%2e/%2e%2e/etc/passwd",
        "/media/local/..%2f..%2fetc%2fpasswd",
        "/media/local//etc/passwd",
        "/media/local/%2fetc%2fpasswd",
        "/media/local/nested\\..\\..\\x",
        "/media/local/nested%5c..%5cx",
        "/media/local/big.bin%00.jpg",
        "/media/local/a%0d%0aSet-Cookie:%20x",
        "/media/local/a%0a",
        "/media/local/http://127.0.0.1/x",
        "/media/local/",
    ],
)
def test_traversal_and_malformed_keys_are_400(server: Server, path: str) -> None:
    status, headers, body = server.raw_get(path)
    assert status == 400, body
    assert headers["x-content-type-options"] == "nosniff"
    assert b"detail" in body


@pytest.mark.parametrize("key", ["escape.txt", "escape-dir/passwords.txt", ".secret", "nested", "pipe", "missing.jpg"])
def test_symlink_escape_hidden_dirs_and_fifos_are_404(server: Server, key: str) -> None:
    status, _, body = server.raw_get(f"/media/local/{key}")
    assert status == 404
    assert b"secret" not in body
    status, _, _ = server.raw_get(f"/media/local/{key}", method="HEAD")
    assert status == 404


def test_unknown_backend_is_404(server: Server) -> None:
    response = get(server, "/media/nope/big.bin")
    assert response.status_code == 404
    assert response.json() == {"detail": "no backend named 'nope'"}
    assert response.headers["x-content-type-options"] == "nosniff"


def test_missing_root_is_503(server: Server) -> None:
    response = get(server, "/media/gone/anything.jpg")
    assert response.status_code == 503
    assert "root" in response.json()["detail"]


def test_other_methods_are_405(server: Server) -> None:
    response = httpx.post(server.url + "/media/local/big.bin", content=b"x")
    assert response.status_code == 405
    assert response.headers["x-content-type-options"] == "nosniff"


def test_healthz(server: Server) -> None:
    response = get(server, "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# --- cleanup on disconnect -----------------------------------------------------------------


def test_aborted_downloads_leave_no_open_files(server: Server, media_dir: Path) -> None:
    assert server.open_files_under(media_dir) == []
    for _ in range(50):
        abort_after_first_bytes(server, "/media/local/big.bin")
    assert wait_until(lambda: server.open_files_under(media_dir) == []), server.open_files_under(media_dir)
    assert get(server, "/media/local/big.bin").status_code == 200


def test_server_stops_reading_after_the_client_leaves(server: Server, media_dir: Path) -> None:
    before = server.bytes_read()
    abort_after_first_bytes(server, "/media/local/sparse.bin")
    assert wait_until(lambda: server.open_files_under(media_dir) == [])
    time.sleep(0.5)
    read = server.bytes_read() - before
    # Loopback socket buffers hold a few MiB; the file is 256 MiB.
    assert read < 32 * 1024 * 1024, f"server read {read} bytes after a client left"
