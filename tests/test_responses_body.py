"""MediaResponse's guards on a body's length: a source that yields more or fewer bytes than
it declared fails the response after the status line (so the server aborts the connection),
never ends it cleanly; the chunks are closed and on_finish hears how it ended."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from starlette.types import Message

from mediasrv.outcome import Outcome
from mediasrv.responses import MediaResponse


class Chunks:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if not self.chunks:
            raise StopAsyncIteration
        return self.chunks.pop(0)

    async def aclose(self) -> None:
        self.closed = True


async def run(chunks: Chunks, content_length: int) -> tuple[list[Message], list[str], BaseException | None]:
    sent: list[Message] = []
    outcomes: list[str] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    response = MediaResponse(200, [], chunks, content_length=content_length, on_finish=outcomes.append)
    try:
        await response({"type": "http"}, receive, send)
    except RuntimeError as exc:
        return sent, outcomes, exc
    return sent, outcomes, None


def ended_cleanly(sent: list[Message]) -> bool:
    return any(message.get("more_body") is False for message in sent)


@pytest.mark.asyncio
async def test_a_body_of_the_declared_length_ends_cleanly() -> None:
    chunks = Chunks([b"abc", b"def"])
    sent, outcomes, error = await run(chunks, 6)
    assert error is None
    assert ended_cleanly(sent)
    assert b"".join(message.get("body", b"") for message in sent) == b"abcdef"
    assert outcomes == [Outcome.COMPLETE]
    assert chunks.closed


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("chunks", "declared", "problem"),
    [
        ([b"abc", b"def"], 4, "source yielded more than the 4 bytes it declared"),
        ([b"abc"], 10, "source ended after 3 of 10 bytes"),
        ([], 1, "source ended after 0 of 1 bytes"),
    ],
)
async def test_a_body_of_another_length_fails_after_the_status_line(
    chunks: list[bytes], declared: int, problem: str
) -> None:
    source = Chunks(chunks)
    sent, outcomes, error = await run(source, declared)
    assert error is not None and problem in str(error)
    assert sent[0]["type"] == "http.response.start"
    assert not ended_cleanly(sent)
    assert sum(len(message.get("body", b"")) for message in sent) <= declared  # never past the length
    assert outcomes == [Outcome.SOURCE_FAILED]
    assert source.closed
