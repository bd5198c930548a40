"""Large S3 objects in parallel ranged parts (DESIGN.md "Large objects from S3"), against a
real S3 server (moto's): in-process for the byte-exact matrix and the part mechanics, over a
real socket for what a client sees (an object replaced mid-stream, aborted downloads)."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from conftest import Server, abort_after_first_bytes, get, sha256, start_server, wait_until
from mediasrv import ByteRange, Conditions, ObjectStream, UpstreamError
from mediasrv_s3 import S3Backend, S3Settings
from mediasrv_s3 import parts as parts_module
from mediasrv_s3.backend import S3Chunks
from mediasrv_s3.parts import ObjectChanged, Part, PartBody, PartStream, plan_parts
from s3_server import MotoServer

BUCKET = "parts"
PART = 1024  # the smallest part_size, so the matrix moves little data
WINDOW = 3
THRESHOLD = 4 * PART
SIZES = (1, PART - 1, PART, PART + 1, 2 * PART - 1, 2 * PART, 2 * PART + 1, THRESHOLD, THRESHOLD + 1, 7 * PART + 5)
DATA = {size: os.urandom(size) for size in SIZES}
BIG = os.urandom(64 * PART + 7)


def settings(moto: MotoServer, **extra: object) -> S3Settings:
    values = {"timeout": 5, "part_size": PART, "parallel_parts": WINDOW, "parallel_threshold": THRESHOLD}
    return S3Settings.model_validate(moto.backend_values(BUCKET, **{**values, "max_pool_connections": 8, **extra}))


@pytest.fixture(scope="module")
def bucket(moto: MotoServer) -> Iterator[str]:
    s3 = moto.client()
    s3.create_bucket(Bucket=BUCKET)
    for size, data in DATA.items():
        s3.put_object(Bucket=BUCKET, Key=f"{size}.bin", Body=data)
    s3.put_object(Bucket=BUCKET, Key="big.bin", Body=BIG)
    s3.put_object(Bucket=BUCKET, Key="empty.bin", Body=b"")
    yield BUCKET


class GetLog:
    """The Range and If-Match of every GetObject the backend's client sends (botocore's
    public event hooks), and the most sent at once."""

    def __init__(self) -> None:
        self.requests: list[tuple[str | None, str | None]] = []

    def __call__(self, request: Any, **_: Any) -> None:
        headers = request.headers
        self.requests.append((_text(headers.get("Range")), _text(headers.get("If-Match"))))


def _text(value: str | bytes | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def eager(backend: S3Backend) -> S3Backend:
    """``backend`` with its parts started at once: on moto the probe would keep them to one
    more GET (every ranged GET there costs a whole-object read)."""
    backend.probe_first_part = False
    return backend


@pytest_asyncio.fixture
async def backend(moto: MotoServer, bucket: str) -> AsyncIterator[S3Backend]:
    backend = eager(S3Backend("parts", settings(moto)))
    await backend.start()
    yield backend
    await backend.stop()


@pytest_asyncio.fixture
async def get_log(backend: S3Backend) -> GetLog:
    log = GetLog()
    backend.client.meta.events.register("before-send.s3.GetObject", log)
    return log


async def read_all(stream: ObjectStream) -> bytes:
    return b"".join([chunk async for chunk in stream.chunks])


def expected_range(size: int, byte_range: ByteRange | None) -> tuple[int, int]:
    if byte_range is None:
        return 0, size - 1
    resolved = byte_range.resolve(size)
    return resolved.first, resolved.last


RANGES = [
    None,
    ByteRange(0, 0),  # one byte
    ByteRange(10, 20),  # inside the first part
    ByteRange(PART + 3, 2 * PART - 2),  # inside a later part
    ByteRange(PART - 1, PART),  # the two bytes around the first boundary
    ByteRange(PART - 5, 3 * PART + 5),  # across parts
    ByteRange(PART + 1),  # from inside a part to the end
    ByteRange(suffix=1),
    ByteRange(suffix=PART + 1),
    ByteRange(suffix=THRESHOLD + 2),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("size", SIZES)
async def test_parts_reassemble_byte_exact_for_every_boundary(backend: S3Backend, size: int) -> None:
    data = DATA[size]
    for byte_range in RANGES:
        if byte_range is not None and byte_range.first is not None and byte_range.first >= size:
            continue
        first, last = expected_range(size, byte_range)
        stream = await backend.open(f"{size}.bin", byte_range, Conditions())
        assert await read_all(stream) == data[first : last + 1], (size, byte_range)
        assert stream.info.size == size
        if byte_range is None:
            assert stream.content_range is None
        else:
            assert stream.content_range is not None
            assert (stream.content_range.first, stream.content_range.last) == (first, last)


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [PART, THRESHOLD])
async def test_up_to_the_threshold_an_object_costs_one_get(backend: S3Backend, get_log: GetLog, size: int) -> None:
    stream = await backend.open(f"{size}.bin", None, Conditions())
    assert isinstance(stream.chunks, S3Chunks)
    assert await read_all(stream) == DATA[size]
    assert get_log.requests == [(None, None)]


@pytest.mark.asyncio
async def test_a_range_up_to_the_threshold_costs_one_get_of_that_range(backend: S3Backend, get_log: GetLog) -> None:
    stream = await backend.open("big.bin", ByteRange(PART - 5, PART + THRESHOLD - 6), Conditions())
    assert isinstance(stream.chunks, S3Chunks)
    assert await read_all(stream) == BIG[PART - 5 : PART + THRESHOLD - 5]
    assert get_log.requests == [(f"bytes={PART - 5}-{PART + THRESHOLD - 6}", None)]


@pytest.mark.asyncio
async def test_above_the_threshold_parts_are_fetched_in_parallel_on_the_etag(
    backend: S3Backend, get_log: GetLog
) -> None:
    stream = await backend.open("big.bin", None, Conditions())
    assert isinstance(stream.chunks, PartStream)
    assert stream.chunks.workers == WINDOW  # before the client has read a byte
    assert await read_all(stream) == BIG
    etag = stream.info.etag
    ranges = [f"bytes={start}-{min(start + PART, len(BIG)) - 1}" for start in range(0, len(BIG), PART)]
    assert get_log.requests[0] == (None, None)  # the whole object: its first part is read from it
    assert sorted(get_log.requests[1:]) == sorted((value, etag) for value in ranges[1:])


@pytest.mark.asyncio
@pytest.mark.parametrize("pays", [True, False])
async def test_the_first_part_probes_whether_parallel_parts_pay(
    backend: S3Backend, get_log: GetLog, monkeypatch: pytest.MonkeyPatch, pays: bool
) -> None:
    judged: list[tuple[int, float, float]] = []

    def judge(window: int, first_byte_seconds: float, transfer_seconds: float) -> bool:
        judged.append((window, first_byte_seconds, transfer_seconds))
        return pays

    monkeypatch.setattr(parts_module, "parallel_pays", judge)
    backend.probe_first_part = True
    stream = await backend.open("big.bin", None, Conditions())
    assert isinstance(stream.chunks, PartStream)
    assert stream.chunks.workers == 1  # nothing else until the first part is read
    assert await read_all(stream) == BIG
    assert len(judged) == 1 and judged[0][0] == WINDOW and judged[0][1] > 0 and judged[0][2] > 0
    if pays:
        assert len(get_log.requests) == len(range(0, len(BIG), PART))
    else:  # the first GET read on to the end: one GET in all, as without parts
        assert get_log.requests == [(None, None)]


@pytest.mark.asyncio
async def test_a_client_range_read_on_after_the_probe_is_one_get_and_byte_exact(
    backend: S3Backend, get_log: GetLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parts_module, "parallel_pays", lambda *_: False)
    backend.probe_first_part = True
    first, last = PART - 5, 40 * PART + 9
    stream = await backend.open("big.bin", ByteRange(first, last), Conditions())
    assert isinstance(stream.chunks, PartStream)
    assert await read_all(stream) == BIG[first : last + 1]
    assert get_log.requests == [(f"bytes={first}-{last}", None)]


def test_parallel_parts_pay_when_transfers_outweigh_the_time_to_first_byte() -> None:
    # Capped at 50 MB/s: 4 MiB take 84 ms against a few ms to answer.
    assert parts_module.parallel_pays(8, first_byte_seconds=0.03, transfer_seconds=0.084)
    # moto, 100 MiB: 130 ms to answer any range, 4 ms to send 4 MiB.
    assert not parts_module.parallel_pays(8, first_byte_seconds=0.13, transfer_seconds=0.004)


@pytest.mark.asyncio
async def test_the_empty_object_is_served(backend: S3Backend) -> None:
    stream = await backend.open("empty.bin", None, Conditions())
    assert await read_all(stream) == b""
    assert stream.info.size == 0 and stream.content_range is None


@pytest.mark.asyncio
async def test_memory_stays_under_parallel_parts_times_part_size(backend: S3Backend) -> None:
    stream = await backend.open("big.bin", None, Conditions())
    parts = stream.chunks
    assert isinstance(parts, PartStream)
    first = await anext(parts)
    # A client that reads no more: the window fills, then every worker stops.
    assert await _eventually(lambda: parts.workers == 0)
    assert parts.buffered == WINDOW * PART - len(first)
    rest = b"".join([chunk async for chunk in parts])
    assert first + rest == BIG


@pytest.mark.asyncio
async def test_a_closed_stream_releases_every_part_and_its_slots(moto: MotoServer, bucket: str) -> None:
    backend = eager(S3Backend("parts", settings(moto, max_pool_connections=WINDOW)))
    await backend.start()
    try:
        for _ in range(5):
            stream = await backend.open("big.bin", None, Conditions())
            parts = stream.chunks
            assert isinstance(parts, PartStream) and parts.workers == WINDOW
            await anext(parts)
            await parts.aclose()
            assert parts.workers == 0
        # Every slot is free again: WINDOW streams of one part each can open at once.
        held = [await backend.open(f"{PART}.bin", None, Conditions()) for _ in range(WINDOW)]
        for stream in held:
            assert await read_all(stream) == DATA[PART]
    finally:
        await backend.stop()


@pytest.mark.asyncio
async def test_a_busy_pool_makes_a_stream_slower_not_failed(moto: MotoServer, bucket: str) -> None:
    backend = eager(S3Backend("parts", settings(moto, max_pool_connections=2)))
    await backend.start()
    try:
        streams = [await backend.open("big.bin", None, Conditions()) for _ in range(2)]
        datas = await asyncio.gather(*(read_all(stream) for stream in streams))
        assert datas == [BIG, BIG]
    finally:
        await backend.stop()


@pytest.mark.asyncio
async def test_a_stream_held_up_by_its_client_keeps_one_connection_slot(moto: MotoServer, bucket: str) -> None:
    backend = eager(S3Backend("parts", settings(moto, max_pool_connections=2, timeout=0.5)))
    await backend.start()
    try:
        held = await backend.open("big.bin", None, Conditions())
        parts = held.chunks
        assert isinstance(parts, PartStream)
        # Nothing is read: the window fills, the workers stop, the stream keeps its own slot only.
        assert await _eventually(lambda: parts.workers == 0 and parts.buffered == WINDOW * PART)
        other = await backend.open(f"{PART}.bin", None, Conditions())
        assert await read_all(other) == DATA[PART]
        assert await read_all(held) == BIG
    finally:
        await backend.stop()


@pytest.mark.asyncio
async def test_an_object_replaced_mid_stream_aborts_never_mixing_versions(backend: S3Backend, moto: MotoServer) -> None:
    s3 = moto.client()
    s3.put_object(Bucket=BUCKET, Key="replaced.bin", Body=BIG)
    stream = await backend.open("replaced.bin", None, Conditions())
    received = await anext(stream.chunks)
    await asyncio.to_thread(s3.put_object, Bucket=BUCKET, Key="replaced.bin", Body=os.urandom(len(BIG)))
    with pytest.raises(ObjectChanged):
        async for chunk in stream.chunks:
            received += chunk
    assert len(received) < len(BIG)
    assert received == BIG[: len(received)]


class FailingBody:
    """A part's body that breaks after ``good`` bytes, as a dropped connection does."""

    def __init__(self, body: PartBody, good: int) -> None:
        self.body = body
        self.good = good

    async def read(self, amt: int) -> bytes:
        if self.good <= 0:
            raise ConnectionResetError("injected")
        chunk = await self.body.read(min(amt, self.good))
        self.good -= len(chunk)
        return chunk

    def close(self) -> None:
        self.body.close()


def failing_part(
    backend: S3Backend, monkeypatch: pytest.MonkeyPatch, part_first: int, failures: int
) -> list[tuple[int, int]]:
    """Make the GETs of the part at ``part_first`` break after 100 bytes, ``failures`` times;
    the (first, last) of every part GET made."""
    calls: list[tuple[int, int]] = []
    original = backend._open_part

    async def open_part(s3_key: str, etag: str, size: int, first: int, last: int) -> PartBody:
        calls.append((first, last))
        body = await original(s3_key, etag, size, first, last)
        if part_first <= first < part_first + PART and len([c for c in calls if c[1] == last]) <= failures:
            return FailingBody(body, 100)
        return body

    monkeypatch.setattr(backend, "_open_part", open_part)
    return calls


@pytest.mark.asyncio
async def test_a_failed_part_is_retried_once_from_where_it_broke(
    backend: S3Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = failing_part(backend, monkeypatch, 5 * PART, failures=1)
    stream = await backend.open("big.bin", None, Conditions())
    assert await read_all(stream) == BIG
    assert [call for call in calls if call[1] == 6 * PART - 1] == [
        (5 * PART, 6 * PART - 1),
        (5 * PART + 100, 6 * PART - 1),
    ]


@pytest.mark.asyncio
async def test_a_part_that_fails_twice_fails_the_stream(backend: S3Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = failing_part(backend, monkeypatch, 5 * PART, failures=2)
    stream = await backend.open("big.bin", None, Conditions())
    received = b""
    with pytest.raises(UpstreamError):
        async for chunk in stream.chunks:
            received += chunk
    assert [call for call in calls if call[1] == 6 * PART - 1] == [
        (5 * PART, 6 * PART - 1),
        (5 * PART + 100, 6 * PART - 1),
    ]
    assert received == BIG[: len(received)] and 5 * PART + 100 <= len(received) < 6 * PART
    assert isinstance(stream.chunks, PartStream) and stream.chunks.workers == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("retry_fails", [False, True])
async def test_the_rest_read_on_is_retried_once_from_where_it_broke(
    backend: S3Backend, get_log: GetLog, monkeypatch: pytest.MonkeyPatch, retry_fails: bool
) -> None:
    monkeypatch.setattr(parts_module, "parallel_pays", lambda *_: False)
    backend.probe_first_part = True
    original_get = backend._get

    async def breaking_get(key: str, range_header: str | None, arguments: dict[str, Any]) -> Any:
        slot, answer = await original_get(key, range_header, arguments)
        answer["Body"] = FailingBody(answer["Body"], 3 * PART + 100)  # the first GET breaks in its rest
        return slot, answer

    monkeypatch.setattr(backend, "_get", breaking_get)
    failing_part(backend, monkeypatch, 3 * PART, failures=1 if retry_fails else 0)
    stream = await backend.open("big.bin", None, Conditions())
    received = b""
    if retry_fails:
        with pytest.raises(UpstreamError):
            async for chunk in stream.chunks:
                received += chunk
        assert len(received) == 3 * PART + 200 and received == BIG[: len(received)]
    else:
        assert await read_all(stream) == BIG
    assert get_log.requests[:2] == [(None, None), (f"bytes={3 * PART + 100}-{len(BIG) - 1}", stream.info.etag)]
    assert isinstance(stream.chunks, PartStream) and stream.chunks.workers == 0


async def _eventually(predicate: Any, timeout: float = 10.0) -> bool:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
    return True


# Over a real socket: what a client of mediasrv sees

SERVED_PART = 256 * 1024
SERVED = os.urandom(80 * SERVED_PART + 3)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, moto: MotoServer, bucket: str) -> Iterator[Server]:
    moto.client().put_object(Bucket=BUCKET, Key="served.bin", Body=SERVED)
    backend = moto.backend_settings(
        "parts", BUCKET, part_size=SERVED_PART, parallel_parts=4, parallel_threshold=SERVED_PART, chunk_size=65536
    ).replace('kind = "s3"', 'kind = "eager-s3"')
    settings = 'plugins = ["eager_s3"]\n' + backend
    server = start_server(tmp_path_factory.mktemp("server"), settings, plugins=("eager_s3",))
    yield server
    server.stop()


def test_served_object_and_ranges_are_byte_exact(server: Server) -> None:
    assert sha256(get(server, "/media/parts/served.bin").content) == sha256(SERVED)
    first, last = SERVED_PART - 7, 9 * SERVED_PART + 7
    response = get(server, "/media/parts/served.bin", range=f"bytes={first}-{last}")
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {first}-{last}/{len(SERVED)}"
    assert response.content == SERVED[first : last + 1]


def test_an_object_replaced_mid_stream_aborts_the_client_connection(server: Server, moto: MotoServer) -> None:
    s3 = moto.client()
    s3.put_object(Bucket=BUCKET, Key="replaced-served.bin", Body=SERVED)
    received = b""
    with httpx.stream("GET", server.url + "/media/parts/replaced-served.bin", timeout=20) as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(SERVED))
        chunks = response.iter_raw(65536)
        received += next(chunks)  # the server fills its window and the sockets' buffers, then waits
        s3.put_object(Bucket=BUCKET, Key="replaced-served.bin", Body=os.urandom(len(SERVED)))
        with pytest.raises(httpx.RemoteProtocolError):
            for chunk in chunks:
                received += chunk
    assert len(received) < len(SERVED)
    assert received == SERVED[: len(received)]
    assert "changed while it was streamed" in server.log()


def test_aborted_downloads_leave_the_s3_connections_at_baseline(server: Server, moto: MotoServer) -> None:
    assert sha256(get(server, "/media/parts/served.bin").content) == sha256(SERVED)
    baseline = server.connections_to(moto.port)
    for _ in range(100):
        abort_after_first_bytes(server, "/media/parts/served.bin", read=65536)
    assert wait_until(lambda: server.connections_to(moto.port) <= baseline, timeout=15)
    assert sha256(get(server, "/media/parts/served.bin").content) == sha256(SERVED)


def test_parts_cut_the_answer_into_part_size_pieces_in_order() -> None:
    assert plan_parts(0, 10 * PART, PART) == [Part(start, start + PART - 1) for start in range(0, 10 * PART, PART)]
    parts = plan_parts(5, 2 * PART + 1, PART)
    assert parts == [Part(5, PART + 4), Part(PART + 5, 2 * PART + 4), Part(2 * PART + 5, 2 * PART + 5)]
    assert all(a.last + 1 == b.first for a, b in itertools.pairwise(parts))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("byte_range", "header"),
    [
        (None, None),
        (ByteRange(10), "bytes=10-"),
        (ByteRange(10, 50 * PART), f"bytes=10-{50 * PART}"),
        (ByteRange(suffix=40 * PART), f"bytes=-{40 * PART}"),
    ],
)
async def test_the_first_get_asks_for_the_clients_range_as_it_is(
    backend: S3Backend, get_log: GetLog, byte_range: ByteRange | None, header: str | None
) -> None:
    stream = await backend.open("big.bin", byte_range, Conditions())
    first, last = expected_range(len(BIG), byte_range)
    assert await read_all(stream) == BIG[first : last + 1]
    assert get_log.requests[0] == (header, None)
    assert all(etag == stream.info.etag for _, etag in get_log.requests[1:])
