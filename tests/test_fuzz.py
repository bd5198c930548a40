"""Property-based fuzzing (hypothesis) of keys, Range and the If-* headers against the memory
and local backends, in-process (the app through httpx's ASGI transport, with its lifespan):
never a 500, never a byte from outside the local root, every 206 an exact slice, and the
RFC 9110 precondition order for well-formed validators. Bounded: a few hundred examples per
property, no example database, so ``make test`` spends seconds here.

Transform parameters (``?width=...``) are not fuzzed yet: that endpoint does not exist on
this branch.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import write_settings
from mediasrv.app import create_app
from mediasrv.configuration import load_configuration
from plugins.memory_backend import pattern

SIZE = 15000  # several 4 KiB chunks, not a multiple of them
DATA = pattern(SIZE)
SECRET = b"OUTSIDE-THE-ROOT-7d1e"
BACKENDS = ("disk", "memory", "cutting")  # cutting: a memory backend that ignores Range (the core cuts)

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fuzz")
    (base / "outside").mkdir()
    (base / "outside" / "secret.txt").write_bytes(SECRET)
    root = base / "root"
    (root / "dir").mkdir(parents=True)
    (root / "obj.bin").write_bytes(DATA)
    (root / "dir" / "b.txt").write_bytes(b"inside b")
    (root / ".hidden").write_bytes(SECRET)
    os.symlink(base / "outside" / "secret.txt", root / "out")
    os.symlink(base / "outside", root / "outdir")
    os.symlink(root / "obj.bin", root / "link.bin")
    return root


@pytest.fixture(scope="module")
def client(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppClient]:
    config = tmp_path_factory.mktemp("fuzz-config")
    path = write_settings(
        config,
        f"""
plugins = ["memory_backend"]

[server]
access_log = false

[backends.disk]
kind = "local"
root = "{root}"
chunk_size = 4096

[backends.memory]
kind = "memory"
chunk_size = 4096
generated = {{ "obj.bin" = {SIZE} }}
objects = {{ "dir/b.txt" = "inside b" }}

[backends.cutting]
kind = "memory"
chunk_size = 4096
ignore_range = true
generated = {{ "obj.bin" = {SIZE} }}
""",
        plugins=("memory_backend",),
    )
    app = create_app(load_configuration(path))
    with asyncio.Runner() as runner:
        client = AppClient(app, runner)
        lifespan = app.router.lifespan_context(app)
        runner.run(lifespan.__aenter__())
        try:
            yield client
        finally:
            runner.run(lifespan.__aexit__(None, None, None))
            runner.run(client.client.aclose())


class AppClient:
    """Requests to the app in this process, on one event loop (hypothesis tests are sync)."""

    def __init__(self, app: FastAPI, runner: asyncio.Runner) -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://test")
        self.runner = runner

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.runner.run(self.client.get(path, headers=headers))

    def head(self, path: str) -> httpx.Response:
        return self.runner.run(self.client.head(path))


SEGMENTS = st.sampled_from(
    ["..", ".", "", "obj.bin", "dir", "b.txt", "out", "outdir", "secret.txt", "link.bin", ".hidden", "outside",
     "%2e%2e", "%2f", "\\", "\x00", "~", "a:b", "http:", "//", "?", "#", "\n", "\u00fc", "\ud800"]
)  # fmt: skip
KEYS = st.lists(st.one_of(SEGMENTS, st.text(max_size=12)), min_size=1, max_size=6).map("/".join)


def url_of(backend: str, key: str) -> str:
    """The key percent-encoded whole (dots too), so the client normalises nothing and the app
    receives exactly ``key``, as uvicorn decodes it."""
    encoded = "/".join(quote(segment, safe="", errors="surrogatepass").replace(".", "%2E") for segment in key.split("/"))
    return f"/media/{backend}/{encoded}"


def file_inside(root: Path, key: str) -> bytes | None:
    """The bytes a key may legitimately serve from ``root``: a regular file that stays inside."""
    try:
        path = Path(os.path.realpath(root / key))
    except (ValueError, OSError):
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path.read_bytes()


@FUZZ
@given(backend=st.sampled_from(("disk", "memory")), key=KEYS)
def test_keys_never_500_and_never_leave_the_root(client: AppClient, root: Path, backend: str, key: str) -> None:
    response = client.get(url_of(backend, key))
    assert response.status_code in (200, 400, 404), response.text
    assert SECRET not in response.content
    if response.status_code == 200 and backend == "disk":
        assert response.content == file_inside(root, key)
    if response.status_code != 200:
        assert "detail" in response.json()


NUMBER = st.one_of(st.integers(0, SIZE + 10), st.integers(0, 10**30), st.sampled_from(["", "-1", "0x10", "1e3", " 5"]))
RANGES = st.one_of(
    st.builds(
        lambda unit, space, first, last, extra: f"{unit}={space}{first}-{last}{extra}",
        st.sampled_from(["bytes", "BYTES", "items", "bytes "]),
        st.sampled_from(["", " ", "\t"]),
        NUMBER,
        NUMBER,
        st.sampled_from(["", ",", ", 0-1", ",5-", " ", "x"]),
    ),
    st.text(max_size=40),
)


def check_body(response: httpx.Response, expected: bytes) -> None:
    """A 200 carries ``expected``; a 206 exactly the slice its Content-Range names."""
    status, headers, body = response.status_code, response.headers, response.content
    if status == 200:
        assert body == expected
        assert headers["content-length"] == str(len(expected))
    elif status == 206:
        unit, _, spec = headers["content-range"].partition(" ")
        span, _, size = spec.partition("/")
        first, _, last = span.partition("-")
        assert unit == "bytes" and int(size) == len(expected)
        assert 0 <= int(first) <= int(last) < len(expected)
        assert body == expected[int(first) : int(last) + 1]
        assert headers["content-length"] == str(len(body))
    elif status == 416:
        assert headers["content-range"] == f"bytes */{len(expected)}"


@FUZZ
@given(backend=st.sampled_from(BACKENDS), range_header=RANGES)
def test_every_range_answer_is_exact(client: AppClient, backend: str, range_header: str) -> None:
    try:
        response = client.get(f"/media/{backend}/obj.bin", headers={"Range": range_header})
    except UnicodeEncodeError:
        return  # not a header a client can send
    assert response.status_code in (200, 206, 416), response.text
    check_body(response, DATA)


def current_validators(client: AppClient, backend: str) -> tuple[str, datetime]:
    response = client.head(f"/media/{backend}/obj.bin")
    return response.headers["etag"], parsedate_to_datetime(response.headers["last-modified"])


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


@st.composite
def conditions(draw: st.DrawFn, etag: str, modified: datetime) -> dict[str, str]:
    """Well-formed If-* headers around the object's validators (and sometimes a Range)."""
    tags = st.sampled_from([etag, f"W/{etag}", '"other"', 'W/"other"'])
    tag_lists = st.one_of(st.just("*"), st.lists(tags, min_size=1, max_size=3).map(", ".join))  # "*" only alone
    dates = st.integers(-3, 3).map(lambda days: http_date(modified + timedelta(days=days)))
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        headers["If-Match"] = draw(tag_lists)
    if draw(st.booleans()):
        headers["If-None-Match"] = draw(tag_lists)
    if draw(st.booleans()):
        headers["If-Modified-Since"] = draw(dates)
    if draw(st.booleans()):
        headers["If-Unmodified-Since"] = draw(dates)
    if draw(st.booleans()):
        headers["Range"] = f"bytes={draw(st.integers(0, SIZE + 5))}-{draw(st.sampled_from(['', '99', str(SIZE)]))}"
        if draw(st.booleans()):
            headers["If-Range"] = draw(st.one_of(st.sampled_from([etag, f"W/{etag}", '"other"']), dates))
    return headers


def expected_status(headers: dict[str, str], etag: str, modified: datetime) -> int | None:
    """RFC 9110 13.2.2 for a GET: 412, 304, or None (200/206/416, decided by the range)."""

    def listed(header: str, weak: bool) -> bool:
        if headers[header] == "*":
            return True
        tags = [tag.strip() for tag in headers[header].split(",")]
        if weak:
            return any(tag.removeprefix("W/") == etag for tag in tags)
        return etag in tags

    if "If-Match" in headers:
        if not listed("If-Match", weak=False):
            return 412
    elif "If-Unmodified-Since" in headers and modified > parsedate_to_datetime(headers["If-Unmodified-Since"]):
        return 412
    if "If-None-Match" in headers:
        if listed("If-None-Match", weak=True):
            return 304
    elif "If-Modified-Since" in headers and modified <= parsedate_to_datetime(headers["If-Modified-Since"]):
        return 304
    return None


@FUZZ
@given(backend=st.sampled_from(BACKENDS), data=st.data())
def test_preconditions_follow_rfc_9110_order(client: AppClient, backend: str, data: st.DataObject) -> None:
    etag, modified = current_validators(client, backend)
    headers = data.draw(conditions(etag, modified))
    response = client.get(f"/media/{backend}/obj.bin", headers=headers)
    expected = expected_status(headers, etag, modified)
    if expected is not None:
        assert response.status_code == expected, (headers, response.headers)
    else:
        assert response.status_code in (200, 206, 416)
        check_body(response, DATA)
    if response.status_code == 304:
        assert response.content == b""
        assert response.headers["etag"] == etag


GARBAGE = st.one_of(st.text(max_size=60), st.sampled_from(['"', "W/", 'W/"', '"a" "b"', ",,,", "Fri, 31 Dec 9999"]))


@FUZZ
@given(
    backend=st.sampled_from(BACKENDS),
    name=st.sampled_from(["If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range"]),
    value=GARBAGE,
    with_range=st.booleans(),
)
def test_garbage_validators_never_500(
    client: AppClient, backend: str, name: str, value: str, with_range: bool
) -> None:
    headers = {name: value, **({"Range": "bytes=10-20"} if with_range else {})}
    try:
        response = client.get(f"/media/{backend}/obj.bin", headers=headers)
    except UnicodeEncodeError:
        return
    assert response.status_code in (200, 206, 304, 412, 416), response.text
    if response.status_code in (200, 206):
        check_body(response, DATA)

