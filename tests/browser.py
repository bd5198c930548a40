"""A real headless Chromium, driven through its DevTools protocol over a WebSocket (aiohttp's
client, already a dependency), for the tests that check what a browser sees."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from components import CHROMIUM_FLAGS
from s3_server import terminate

START_TIMEOUT = 30.0
CALL_TIMEOUT = 30.0

Event = dict[str, Any]


class DevToolsError(RuntimeError):
    """Chromium answered a DevTools call with an error, or did not answer in time."""


class Page:
    """One tab, attached through a flat session: DevTools calls and the events it sent."""

    def __init__(self, browser: Browser, session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.call(method, session_id=self.session_id, **params)

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` (awaited when it is a promise), or DevToolsError."""
        reply = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in reply:
            raise DevToolsError(f"script failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def wait_for(self, method: str, predicate: Callable[[Event], bool] = lambda _: True) -> Event:
        """The next (or an already received, not yet taken) event ``method`` of this tab."""
        return await self.browser.wait_for(method, lambda event: self._mine(event) and predicate(event))

    def events(self, method: str) -> list[Event]:
        """Every event ``method`` of this tab received so far."""
        return [event for event in self.browser.received if event["method"] == method and self._mine(event)]

    def _mine(self, event: Event) -> bool:
        return event.get("sessionId") == self.session_id


class Browser:
    """A Chromium process and its browser-level DevTools WebSocket."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.received: list[Event] = []
        self.taken: set[int] = set()
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def call(self, method: str, session_id: str | None = None, **params: Any) -> dict[str, Any]:
        """Send a DevTools command and return its result."""
        message_id = next(self._ids)
        reply = self._replies[message_id] = asyncio.get_running_loop().create_future()
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session_id is not None:
            message["sessionId"] = session_id
        await self.socket.send_str(json.dumps(message))
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                answer = await reply
        except TimeoutError:
            raise DevToolsError(f"{method}: no answer within {CALL_TIMEOUT}s") from None
        finally:
            self._replies.pop(message_id, None)
        if "error" in answer:
            raise DevToolsError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def wait_for(self, method: str, predicate: Callable[[Event], bool]) -> Event:
        """The first event ``method`` matching ``predicate`` not yet taken by an earlier wait."""

        def untaken() -> Event | None:
            for index, event in enumerate(self.received):
                if index not in self.taken and event["method"] == method and predicate(event):
                    self.taken.add(index)
                    return event
            return None

        async with asyncio.timeout(CALL_TIMEOUT), self._arrived:
            while (event := untaken()) is None:
                if self._reader.done():
                    raise DevToolsError("Chromium closed its DevTools connection")
                await self._arrived.wait()
            return event

    async def new_page(self) -> Page:
        """A blank tab, attached in flat mode (its calls and events carry its session id)."""
        target = await self.call("Target.createTarget", url="about:blank")
        attached = await self.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        return Page(self, attached["sessionId"])

    async def close(self) -> None:
        self._reader.cancel()
        with suppress(asyncio.CancelledError):
            await self._reader
        await self.socket.close()

    async def _read(self) -> None:
        try:
            async for message in self.socket:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                data = json.loads(message.data)
                if "id" in data:
                    reply = self._replies.get(data["id"])
                    if reply is not None and not reply.done():
                        reply.set_result(data)
                    continue
                async with self._arrived:
                    self.received.append(data)
                    self._arrived.notify_all()
        finally:
            async with self._arrived:
                self._arrived.notify_all()


@asynccontextmanager
async def chromium(binary: str) -> AsyncIterator[Browser]:
    """Chromium with a fresh profile and DevTools on a free port; stopped (and its profile
    removed) afterwards."""
    with tempfile.TemporaryDirectory(prefix="mediasrv-chromium-") as profile:
        argv = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"]
        log = Path(profile) / "chromium.log"
        with log.open("wb") as output:
            process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)
        try:
            port = await _devtools_port(Path(profile), process, log)
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/json/version") as response:
                    endpoint = (await response.json())["webSocketDebuggerUrl"]
                async with session.ws_connect(endpoint, max_msg_size=0) as socket:
                    browser = Browser(socket)
                    try:
                        yield browser
                    finally:
                        await browser.close()
        finally:
            _stop(process)


async def _devtools_port(profile: Path, process: subprocess.Popen[bytes], log: Path) -> int:
    """The port Chromium writes to DevToolsActivePort once it listens."""
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevToolsError(f"chromium exited with {process.returncode}: {log.read_text(errors='replace')}")
        if active.exists() and (lines := active.read_text().splitlines()):
            return int(lines[0])
        await asyncio.sleep(0.05)
    raise DevToolsError(f"chromium opened no DevTools port within {START_TIMEOUT}s: {log.read_text(errors='replace')}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop Chromium and every helper process it started (renderers, zygotes, utilities)."""
    try:
        helpers = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        helpers = []
    terminate(process)
    _, alive = psutil.wait_procs(helpers, timeout=5)
    for helper in alive:
        helper.kill()
    psutil.wait_procs(alive, timeout=5)
