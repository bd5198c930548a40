"""The S3 backend over a real socket, against a real S3 server (moto's, on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from conftest import (
    PROJECT_DIR,
    Server,
    abort_after_first_bytes,
    free_port,
    get,
    open_stalled_stream,
    reset,
    sha256,
    start_server,
    wait_until,
)
from s3_server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, MotoServer

BIG_SIZE = 10 * 1024 * 1024 + 17
CHUNK_SIZE = 256 * 1024
POOL_SIZE = 4
IMAGE = (PROJECT_DIR / "media" / "landscape.jpg").read_bytes()
BIG = os.urandom(BIG_SIZE)


@pytest.fixture(scope="module")
def buckets(moto: MotoServer) -> dict[str, str]:
    """Two buckets with objects, one of them under a prefix beside a secret outside it."""
    s3 = moto.client()
    s3.create_bucket(Bucket="photos")
    s3.create_bucket(Bucket="archive")
    s3.put_object(Bucket="photos", Key="landscape.jpg", Body=IMAGE, ContentType="image/jpeg")
    s3.put_object(Bucket="photos", Key="big.bin", Body=BIG)
    s3.put_object(Bucket="photos", Key="untyped.png", Body=b"\x89PNG")
    s3.put_object(Bucket="photos", Key="empty.txt", Body=b"")
    s3.put_object(Bucket="photos", Key="dir/nested ü.txt", Body=b"nested", ContentType="text/plain")
    s3.put_object(Bucket="photos", Key="odd +%?#&=;@:,'.txt", Body=b"odd", ContentType="text/plain")
    s3.put_object(Bucket="photos", Key="styled.css", Body=b"a{}", ContentType="text/css", CacheControl="max-age=5")
    s3.put_object(Bucket="photos", Key="page.html", Body=b"<script>1</script>", ContentType="text/html")
    s3.put_object(Bucket="photos", Key="secret.txt", Body=b"outside the prefix")
    s3.put_object(Bucket="photos", Key="public/hello.txt", Body=b"inside the prefix")
    s3.put_object(Bucket="archive", Key="landscape.jpg", Body=b"the archive's copy", ContentType="image/jpeg")
    return {"photos": "photos", "archive": "archive"}


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, moto: MotoServer, buckets: dict[str, str], silent_port: int
) -> Iterator[Server]:
    settings = "\n".join(
        [
            moto.backend_settings(
                "photos", "photos", chunk_size=CHUNK_SIZE, max_pool_connections=POOL_SIZE, timeout=2
            ),
            moto.backend_settings("archive", "archive", cache_control="public, max-age=60"),
            moto.backend_settings("public", "photos", prefix="public"),
            moto.backend_settings("nobucket", "no-such-bucket"),
            moto.backend_settings("refused", "photos", endpoint_url=f"http://127.0.0.1:{free_port()}", timeout=2),
            moto.backend_settings("silent", "photos", endpoint_url=f"http://127.0.0.1:{silent_port}", timeout=0.5),
        ]
    )
    server = start_server(tmp_path_factory.mktemp("server"), settings)
    yield server
    server.stop()


def test_get_big_object_bytes_identical(server: Server) -> None:
    response = get(server, "/media/photos/big.bin")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(BIG_SIZE)
    assert sha256(response.content) == sha256(BIG)


def test_get_image_with_its_metadata(server: Server, moto: MotoServer) -> None:
    head = moto.client().head_object(Bucket="photos", Key="landscape.jpg")
    response = get(server, "/media/photos/landscape.jpg")
    assert response.status_code == 200
    assert response.content == IMAGE
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["etag"] == head["ETag"]
    assert response.headers["last-modified"] == format_datetime(head["LastModified"].astimezone(UTC), usegmt=True)
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_untyped_object_gets_a_type_guessed_from_the_key(server: Server) -> None:
    response = get(server, "/media/photos/untyped.png")
    assert response.headers["content-type"] == "image/png"


def test_nested_unicode_key(server: Server) -> None:
    response = get(server, "/media/photos/dir/nested%20%C3%BC.txt")
    assert response.status_code == 200
    assert response.content == b"nested"


def test_key_with_url_syntax_characters_is_data(server: Server) -> None:
    response = get(server, "/media/photos/odd%20%2B%25%3F%23%26%3D%3B%40%3A%2C%27.txt")
    assert response.status_code == 200
    assert response.content == b"odd"


def test_empty_object(server: Server) -> None:
    response = get(server, "/media/photos/empty.txt")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "0"


def test_objects_cache_control_passes_through_without_a_setting(server: Server) -> None:
    assert get(server, "/media/photos/styled.css").headers["cache-control"] == "max-age=5"


def test_backend_cache_control_setting_wins(server: Server) -> None:
    assert get(server, "/media/archive/landscape.jpg").headers["cache-control"] == "public, max-age=60"


def test_html_object_is_sandboxed(server: Server) -> None:
    assert get(server, "/media/photos/page.html").headers["content-security-policy"] == "sandbox"


def test_two_s3_backends_serve_their_own_buckets(server: Server) -> None:
    assert get(server, "/media/archive/landscape.jpg").content == b"the archive's copy"
    assert get(server, "/media/photos/landscape.jpg").content == IMAGE


def test_head_matches_get_without_a_body(server: Server) -> None:
    full = get(server, "/media/photos/big.bin")
    head = httpx.head(server.url + "/media/photos/big.bin", timeout=10)
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-length", "etag", "last-modified", "content-type", "accept-ranges"):
        assert head.headers[name] == full.headers[name]


def test_head_missing_is_404(server: Server) -> None:
    assert httpx.head(server.url + "/media/photos/missing.jpg", timeout=10).status_code == 404


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=-1", BIG_SIZE - 1, BIG_SIZE - 1),
        ("bytes=1000-2000000", 1000, 2000000),
        (f"bytes={BIG_SIZE - 10}-", BIG_SIZE - 10, BIG_SIZE - 1),
        (f"bytes=5-{BIG_SIZE * 2}", 5, BIG_SIZE - 1),
    ],
)
def test_range_returns_exact_bytes(server: Server, header: str, first: int, last: int) -> None:
    response = get(server, "/media/photos/big.bin", range=header)
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {first}-{last}/{BIG_SIZE}"
    assert response.headers["content-length"] == str(last - first + 1)
    assert response.content == BIG[first : last + 1]


def test_range_past_the_end_is_416_with_the_size(server: Server) -> None:
    response = get(server, "/media/photos/big.bin", range=f"bytes={BIG_SIZE}-")
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{BIG_SIZE}"


def test_range_of_an_empty_object_is_416(server: Server) -> None:
    response = get(server, "/media/photos/empty.txt", range="bytes=0-")
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */0"


def test_if_none_match_current_is_304_and_moves_no_body(server: Server) -> None:
    etag = get(server, "/media/photos/big.bin", range="bytes=0-0").headers["etag"]
    before = server.bytes_read()
    response = get(server, "/media/photos/big.bin", **{"if-none-match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert server.bytes_read() - before < BIG_SIZE // 10


def test_if_modified_since_future_is_304(server: Server) -> None:
    date = format_datetime(datetime(2100, 1, 1, tzinfo=UTC), usegmt=True)
    assert get(server, "/media/photos/landscape.jpg", **{"if-modified-since": date}).status_code == 304


def test_if_modified_since_beyond_year_9999_is_ignored(server: Server) -> None:
    # Issue 12: handing it to botocore raised OverflowError: 502 and a traceback.
    response = get(server, "/media/photos/landscape.jpg", **{"if-modified-since": "Fri, 31 Dec 9999 23:59:59 PST"})
    assert response.status_code == 200
    assert response.content == IMAGE
    assert "Traceback" not in server.log()


def test_if_none_match_other_is_200(server: Server) -> None:
    response = get(server, "/media/photos/landscape.jpg", **{"if-none-match": '"other"'})
    assert response.status_code == 200
    assert response.content == IMAGE


def test_if_match_other_is_412(server: Server) -> None:
    assert get(server, "/media/photos/landscape.jpg", **{"if-match": '"other"'}).status_code == 412


@pytest.mark.parametrize("value", ["*", '"other", {etag}', "{etag}"])
def test_if_match_that_holds_is_200_whatever_s3_makes_of_it(server: Server, value: str) -> None:
    etag = get(server, "/media/photos/landscape.jpg").headers["etag"]
    response = get(server, "/media/photos/landscape.jpg", **{"if-match": value.format(etag=etag)})
    assert response.status_code == 200
    assert response.content == IMAGE


@pytest.mark.parametrize("value", ["*", '"other", {etag}', "W/{etag}"])
def test_if_none_match_that_matches_is_304(server: Server, value: str) -> None:
    etag = get(server, "/media/photos/landscape.jpg").headers["etag"]
    response = get(server, "/media/photos/landscape.jpg", **{"if-none-match": value.format(etag=etag)})
    assert response.status_code == 304


def test_stale_etag_beside_a_current_date_is_200(server: Server) -> None:
    # RFC 9110 ignores If-Modified-Since when If-None-Match is present; S3 does not.
    date = format_datetime(datetime(2100, 1, 1, tzinfo=UTC), usegmt=True)
    headers = {"if-none-match": '"stale"', "if-modified-since": date}
    response = get(server, "/media/photos/landscape.jpg", **headers)
    assert response.status_code == 200
    assert response.content == IMAGE


def test_if_range_stale_sends_the_whole_object(server: Server) -> None:
    response = get(server, "/media/photos/landscape.jpg", range="bytes=0-9", **{"if-range": '"stale"'})
    assert response.status_code == 200
    assert response.content == IMAGE


def test_if_range_current_honours_the_range(server: Server) -> None:
    etag = get(server, "/media/photos/landscape.jpg").headers["etag"]
    response = get(server, "/media/photos/landscape.jpg", range="bytes=0-9", **{"if-range": etag})
    assert response.status_code == 206
    assert response.content == IMAGE[:10]


def test_missing_key_is_404(server: Server) -> None:
    response = get(server, "/media/photos/missing.jpg")
    assert response.status_code == 404
    assert response.json() == {"detail": "not found"}


def test_prefix_serves_keys_under_it(server: Server) -> None:
    assert get(server, "/media/public/hello.txt").content == b"inside the prefix"


def test_prefix_hides_keys_outside_it(server: Server) -> None:
    assert get(server, "/media/public/secret.txt").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/media/public/../secret.txt",
        "/media/public/%2e%2e/secret.txt",
        "/media/public/%2E%2E/secret.txt",
        "/media/public//secret.txt",
        "/media/public/%2Fsecret.txt",
        "/media/public/a/../../secret.txt",
        "/media/public/..%5Csecret.txt",
    ],
)
def test_keys_cannot_leave_the_prefix(server: Server, path: str) -> None:
    status, _, body = server.raw_get(path)
    assert status == 400, path
    assert b"outside the prefix" not in body


def test_missing_bucket_is_503_with_a_clear_detail(server: Server) -> None:
    response = get(server, "/media/nobucket/landscape.jpg")
    assert response.status_code == 503
    assert response.json() == {"detail": "backend 'nobucket': the bucket does not exist"}


def test_refused_connection_is_502(server: Server) -> None:
    response = get(server, "/media/refused/landscape.jpg")
    assert response.status_code == 502
    assert response.json() == {"detail": "backend 'refused': could not connect to S3"}
    assert httpx.head(server.url + "/media/refused/landscape.jpg", timeout=10).status_code == 502


def test_s3_that_never_answers_is_504(server: Server) -> None:
    response = get(server, "/media/silent/landscape.jpg")
    assert response.status_code == 504
    assert response.json() == {"detail": "backend 'silent': S3 did not answer in time"}


def test_secrets_appear_in_no_error_body_and_no_log(server: Server) -> None:
    bodies = [
        get(server, path).content
        for path in ("/media/nobucket/x", "/media/refused/x", "/media/silent/x", "/media/photos/missing", "/media/photos/%00")
    ]
    for text in [*bodies, server.log().encode()]:
        assert SECRET_ACCESS_KEY.encode() not in text
        assert ACCESS_KEY_ID.encode() not in text


def test_saturated_pool_answers_503_in_bounded_time(server: Server) -> None:
    stalled = [open_stalled_stream(server, "/media/photos/big.bin") for _ in range(POOL_SIZE)]
    try:
        started = time.monotonic()
        response = get(server, "/media/photos/landscape.jpg")
        waited = time.monotonic() - started
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert "connections are busy" in response.json()["detail"]
        assert waited < 15
    finally:
        for sock in stalled:
            reset(sock)
    assert wait_until(lambda: get(server, "/media/photos/landscape.jpg").status_code == 200, timeout=10)


def test_aborted_downloads_return_their_connections(server: Server, moto: MotoServer) -> None:
    for _ in range(100):
        abort_after_first_bytes(server, "/media/photos/big.bin", read=CHUNK_SIZE)
    assert wait_until(lambda: server.connections_to(moto.port) <= POOL_SIZE + 1, timeout=10)
    response = get(server, "/media/photos/big.bin")
    assert response.status_code == 200
    assert sha256(response.content) == sha256(BIG)


def test_stopped_s3_server_is_502_then_served_again(
    own_moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    own_moto.client().put_object(Bucket="media", Key="a.txt", Body=b"before")
    server = start_server(tmp_path_factory.mktemp("server"), own_moto.backend_settings("media", "media"))
    try:
        assert get(server, "/media/media/a.txt").content == b"before"
        own_moto.stop()
        assert get(server, "/media/media/a.txt").status_code == 502
        assert httpx.head(server.url + "/media/media/a.txt", timeout=10).status_code == 502
        own_moto.start()
        own_moto.client().create_bucket(Bucket="media")
        own_moto.client().put_object(Bucket="media", Key="a.txt", Body=b"after")
        assert get(server, "/media/media/a.txt").content == b"after"
    finally:
        server.stop()


def test_s3_dying_mid_body_aborts_the_client_connection(
    own_moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    size = 64 * 1024 * 1024
    own_moto.client().put_object(Bucket="media", Key="huge.bin", Body=b"\x01" * size)
    server = start_server(
        tmp_path_factory.mktemp("server"), own_moto.backend_settings("media", "media", chunk_size=CHUNK_SIZE)
    )
    try:
        with httpx.stream("GET", server.url + "/media/media/huge.bin", timeout=20) as response:
            assert response.status_code == 200
            assert response.headers["content-length"] == str(size)
            received = 0
            chunks = response.iter_raw()
            received += len(next(chunks))
            own_moto.kill()
            with pytest.raises(httpx.RemoteProtocolError):
                for chunk in chunks:
                    received += len(chunk)
        assert received < size
        assert get(server, "/healthz").status_code == 200
    finally:
        server.stop()


# A server that checks credentials: moto with IAM authentication on


@dataclass
class LockedS3:
    """An S3 server that checks signatures and IAM policies, and the key pairs of two users:
    ``reader`` may read the bucket ``locked``; ``nobody`` has no permission at all."""

    endpoint_url: str
    reader: tuple[str, str]
    nobody: tuple[str, str]


@pytest.fixture(scope="module")
def locked_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LockedS3]:
    # The first five actions need no credentials: they create the users and their keys.
    moto = MotoServer(
        free_port(), str(tmp_path_factory.mktemp("locked") / "moto.log"), {"INITIAL_NO_AUTH_ACTION_COUNT": "5"}
    )
    moto.start()
    try:
        iam = moto.client("iam")
        keys: dict[str, tuple[str, str]] = {}
        for user in ("reader", "nobody"):
            iam.create_user(UserName=user)
            created = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = (created["AccessKeyId"], created["SecretAccessKey"])
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps(policy))
        s3 = moto.client("s3", *keys["reader"])
        s3.create_bucket(Bucket="locked")
        s3.put_object(Bucket="locked", Key="a.txt", Body=b"for readers only")
        yield LockedS3(moto.endpoint_url, keys["reader"], keys["nobody"])
    finally:
        moto.stop()


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory: pytest.TempPathFactory, locked_moto: LockedS3) -> Iterator[Server]:
    reader_id, reader_secret = locked_moto.reader
    tables = {
        "reader": locked_moto.reader,
        "wrongsecret": (reader_id, "not-the-secret"),
        "unknownkey": ("AKIAUNKNOWNKEY000000", reader_secret),
        "nobody": locked_moto.nobody,
    }
    settings = "".join(
        f"""
[backends.{name}]
kind = "s3"
bucket = "locked"
endpoint_url = "{locked_moto.endpoint_url}"
access_key_id = "{key_id}"
secret_access_key = "{secret}"
"""
        for name, (key_id, secret) in tables.items()
    )
    server = start_server(tmp_path_factory.mktemp("server"), settings)
    yield server
    server.stop()


def test_valid_credentials_read_a_locked_bucket(locked_server: Server) -> None:
    assert get(locked_server, "/media/reader/a.txt").content == b"for readers only"


@pytest.mark.parametrize(
    ("backend", "detail"),
    [
        ("wrongsecret", "the secret access key is wrong"),
        ("unknownkey", "the access key id is not known to S3"),
        ("nobody", "access denied"),
    ],
)
def test_bad_credentials_or_denied_access_is_503_saying_which(locked_server: Server, backend: str, detail: str) -> None:
    response = get(locked_server, f"/media/{backend}/a.txt")
    assert response.status_code == 503
    assert response.json() == {"detail": f"backend {backend!r}: {detail}"}
    assert httpx.head(f"{locked_server.url}/media/{backend}/a.txt", timeout=10).status_code == 503


def test_credentials_appear_in_no_log(locked_server: Server, locked_moto: LockedS3) -> None:
    for backend in ("reader", "wrongsecret", "unknownkey", "nobody"):
        get(locked_server, f"/media/{backend}/a.txt")
    log = locked_server.log()
    for key_id, secret in (locked_moto.reader, locked_moto.nobody):
        assert key_id not in log
        assert secret not in log
    assert "not-the-secret" not in log
