"""Real upstream HTTP servers for the HTTP backend's tests: aiohttp apps serving on free
127.0.0.1 ports from one event loop in a background thread.

- ``files_app``: a file server with Range, ETag, If-None-Match, If-Match... (aiohttp's FileResponse)
- ``ignorer_app``: serves the same files but ignores Range and every conditional header
- ``faulty_app``: errors, timeouts, truncated bodies, redirects, gzip, hop-by-hop headers
- ``canary_app``: answers anything and records it; an SSRF attempt that gets through shows here

Every app records the requests it receives (method, raw path, headers).
"""

from __future__ import annotations

import asyncio
import gzip
import mimetypes
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

from aiohttp import web

SLOW = 5.0  # seconds a slow route stalls: well beyond the faulty backend's timeout
TRUNCATED_DECLARED = 1024 * 1024  # Content-Length the truncating route declares
TRUNCATED_SENT = 300 * 1024  # bytes it sends before closing the connection
SLOW_BODY_SENT = 64 * 1024  # bytes the slow-body route sends before stalling
DRIP_SIZE = 64 * 1024 * 1024  # declared length of the drip route, which sends 1 KiB per tick
DRIP_TICK = 0.05
DRIP_MAX_TICKS = 600  # 30 s at most, whoever listens
GZIP_TEXT = b"gzip-encoded body from the upstream\n" * 200
HOP_CACHE_CONTROL = "public, max-age=77"
FAR_FUTURE_DATE = "Fri, 31 Dec 9999 23:59:59 PST"  # a valid date, but past year 9999 in GMT

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Recorded:
    method: str
    raw_path: str
    headers: dict[str, str]


@dataclass
class Upstream:
    """One running app: its port and what it has received so far."""

    port: int
    requests: list[Recorded] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        return [request.raw_path for request in self.requests]


class UpstreamLoop:
    """An event loop in a daemon thread, serving any number of aiohttp apps."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="upstreams", daemon=True)
        self.thread.start()
        self.runners: list[web.AppRunner] = []

    def serve(self, build: Callable[[Upstream], web.Application]) -> Upstream:
        """Serve the app ``build(upstream)`` makes on a free port; its Upstream record."""
        return asyncio.run_coroutine_threadsafe(self._serve(build), self.loop).result(timeout=10)

    async def _serve(self, build: Callable[[Upstream], web.Application]) -> Upstream:
        upstream = Upstream(port=0)
        app = build(upstream)
        app.middlewares.append(_recorder(upstream))
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        upstream.port = runner.addresses[0][1]
        self.runners.append(runner)
        return upstream

    def close(self) -> None:
        async def cleanup() -> None:
            for runner in self.runners:
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@contextmanager
def serving(build: Callable[[Upstream], web.Application]) -> Iterator[Upstream]:
    """One app on a loop of its own, closed on exit."""
    loop = UpstreamLoop()
    try:
        yield loop.serve(build)
    finally:
        loop.close()


def _recorder(upstream: Upstream) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        upstream.requests.append(
            Recorded(request.method, request.raw_path, {k.lower(): v for k, v in request.headers.items()})
        )
        return await handler(request)

    return record


def _file_under(root: Path, key: str) -> Path:
    path = (root / key).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise web.HTTPNotFound()
    return path


def files_app(root: Path) -> Callable[[Upstream], web.Application]:
    """``/files/{key}`` with full Range and conditional support; ``/health`` answers 200."""

    def build(upstream: Upstream) -> web.Application:
        async def serve_file(request: web.Request) -> web.StreamResponse:
            return web.FileResponse(_file_under(root, request.match_info["key"]), chunk_size=256 * 1024)

        async def health(request: web.Request) -> web.StreamResponse:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/files/{key:.+}", serve_file)
        app.router.add_get("/health", health)
        return app

    return build


def ignorer_app(root: Path) -> Callable[[Upstream], web.Application]:
    """``/plain/{key}``: the whole file with ETag and Last-Modified, whatever Range or
    condition is asked; ``/chunked/{key}``: the same, chunked, without a Content-Length."""

    def build(upstream: Upstream) -> web.Application:
        def validators(path: Path) -> dict[str, str]:
            stat = path.stat()
            return {
                "ETag": f'"plain-{stat.st_size:x}-{stat.st_mtime_ns:x}"',
                "Last-Modified": _http_date(stat.st_mtime),
                "Content-Type": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
            }

        async def plain(request: web.Request) -> web.StreamResponse:
            path = _file_under(root, request.match_info["key"])
            return web.Response(body=path.read_bytes(), headers=validators(path))

        async def chunked(request: web.Request) -> web.StreamResponse:
            path = _file_under(root, request.match_info["key"])
            response = web.StreamResponse(headers=validators(path))
            response.enable_chunked_encoding()
            await response.prepare(request)
            if request.method != "HEAD":
                data = path.read_bytes()
                for start in range(0, len(data), 200_000):
                    await response.write(data[start : start + 200_000])
            await response.write_eof()
            return response

        app = web.Application()
        app.router.add_get("/plain/{key:.+}", plain)
        app.router.add_get("/chunked/{key:.+}", chunked)
        return app

    return build


def faulty_app(canary_port: int) -> Callable[[Upstream], web.Application]:
    """Everything under ``/faulty/`` that an upstream can do wrong (and a plain ``hello.txt``)."""

    def build(upstream: Upstream) -> web.Application:
        async def hello(request: web.Request) -> web.StreamResponse:
            return web.Response(text="hello from the faulty upstream")

        async def status(request: web.Request) -> web.StreamResponse:
            code = int(request.match_info["code"])
            headers = {"Retry-After": "7"} if code == 429 else {}
            return web.Response(status=code, text=f"upstream-internal-detail {code}", headers=headers)

        async def slow_headers(request: web.Request) -> web.StreamResponse:
            await asyncio.sleep(SLOW)
            return web.Response(text="too late")

        async def slow_body(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse()
            response.content_length = TRUNCATED_DECLARED
            await response.prepare(request)
            await response.write(b"s" * SLOW_BODY_SENT)
            await asyncio.sleep(SLOW)
            await response.write(b"s" * (TRUNCATED_DECLARED - SLOW_BODY_SENT))
            return response

        async def truncated(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse()
            response.content_length = TRUNCATED_DECLARED
            await response.prepare(request)
            await response.write(b"t" * TRUNCATED_SENT)
            _drop(request)
            return response

        async def reset(request: web.Request) -> web.StreamResponse:
            _drop(request)
            return web.Response()

        async def drip(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse()
            response.content_length = DRIP_SIZE
            await response.prepare(request)
            for _ in range(DRIP_MAX_TICKS):
                await response.write(b"d" * 1024)
                await asyncio.sleep(DRIP_TICK)
            _drop(request)
            return response

        async def gzipped(request: web.Request) -> web.StreamResponse:
            # Encoded whatever Accept-Encoding says, as a misbehaving upstream does.
            return web.Response(
                body=gzip.compress(GZIP_TEXT, mtime=0),
                headers={"Content-Encoding": "gzip", "Content-Type": "text/plain", "Vary": "Accept-Encoding"},
            )

        async def hop(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(
                headers={
                    "Content-Type": "text/plain",
                    "Connection": "close",
                    "Keep-Alive": "timeout=5, max=100",
                    "Proxy-Authenticate": "Basic realm=upstream",
                    "Set-Cookie": "upstream_session=s3cr3t; HttpOnly",
                    "X-Internal-Secret": "internal-value",
                    "Server": "upstream-server/1.0",
                    "Cache-Control": HOP_CACHE_CONTROL,
                    "ETag": '"hop-1"',
                }
            )
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(b"hop body")
            await response.write_eof()
            return response

        async def far_future(request: web.Request) -> web.StreamResponse:
            return web.Response(text="from the future", headers={"Last-Modified": FAR_FUTURE_DATE, "ETag": '"future"'})

        async def partial_without_range(request: web.Request) -> web.StreamResponse:
            return web.Response(status=206, body=b"x" * 10)

        async def partial_elsewhere(request: web.Request) -> web.StreamResponse:
            return web.Response(status=206, body=b"x" * 10, headers={"Content-Range": "bytes 500-509/1000"})

        def redirect(location: Callable[[web.Request], str], status: int = 302) -> Handler:
            async def handler(request: web.Request) -> web.StreamResponse:
                return web.Response(status=status, headers={"Location": location(request)})

            return handler

        def chain(request: web.Request) -> str:  # redirect-chain/N redirects N times
            hops = int(request.match_info["hops"])
            return "/faulty/hello.txt" if hops <= 1 else f"/faulty/redirect-chain/{hops - 1}"

        canary = f"127.0.0.1:{canary_port}"
        app = web.Application()
        routes = {
            "hello.txt": hello,
            "status/{code:\\d+}": status,
            "slow-headers": slow_headers,
            "slow-body": slow_body,
            "truncated": truncated,
            "reset": reset,
            "drip": drip,
            "gzip": gzipped,
            "hop": hop,
            "far-future": far_future,
            "partial-without-range": partial_without_range,
            "partial-elsewhere": partial_elsewhere,
            "redirect-same": redirect(lambda r: "/faulty/hello.txt", 301),
            "redirect-relative": redirect(lambda r: "hello.txt", 307),
            "redirect-chain/{hops:\\d+}": redirect(chain),
            "redirect-canary": redirect(lambda r: f"http://{canary}/stolen"),
            "redirect-canary-scheme-relative": redirect(lambda r: f"//{canary}/stolen"),
            "redirect-canary-https": redirect(lambda r: f"https://{canary}/stolen", 308),
            "redirect-up": redirect(lambda r: "/outside"),
            "redirect-dotdot": redirect(lambda r: "/faulty/%2e%2e/outside"),
            "redirect-nowhere": redirect(lambda r: ""),
        }
        for path, handler in routes.items():
            app.router.add_get(f"/faulty/{path}", handler)
        app.router.add_route("*", "/outside", hello)
        return app

    return build


def canary_app() -> Callable[[Upstream], web.Application]:
    """Answers anything with 200; its record must stay empty."""

    def build(upstream: Upstream) -> web.Application:
        async def anything(request: web.Request) -> web.StreamResponse:
            return web.Response(text="canary")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", anything)
        return app

    return build


def _drop(request: web.Request) -> None:
    """Close the connection under a response, as an upstream that dies does."""
    transport = request.transport
    if transport is not None:
        transport.close()


def _http_date(timestamp: float) -> str:
    return formatdate(timestamp, usegmt=True)
