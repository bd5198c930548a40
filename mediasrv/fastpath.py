"""``GET``/``HEAD /media/...`` as a plain ASGI route, ahead of FastAPI's own layers.

FastAPI wraps every request in layers mediasrv's media endpoint doesn't use (its body limit,
telemetry and exception layers, an exit stack for dependencies, the router's matching and a
Request per route): profiled, they cost more than serving a small file from memory. Media
requests go instead through the app's own middleware (the access log and metrics, nosniff),
built from the same ``user_middleware`` list, then straight to the media app. Starlette's
``ServerErrorMiddleware`` stays outermost, as in FastAPI, so an unexpected error is still a
500 and is logged. Every other request, and any media path the route would not match, is
FastAPI's as before.

Ahead of even that middleware, an answer kept in memory (``mediasrv.objectcache``) is sent
as it is: its headers already carry what the middleware adds, and it is counted and logged
by the same ``Observer``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mediasrv.objectcache import SmallObjects

# The media route's pattern: ``{backend}`` is one segment, ``{key:mediakey}`` anything.
MEDIA_ROUTE = re.compile(r"/media/([^/]+)/([\s\S]*)")
MEDIA_METHODS = frozenset({"GET", "HEAD"})


class MediaServer(FastAPI):
    """FastAPI, with media requests dispatched to ``media_app`` through the app's middleware only."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.media_app: ASGIApp | None = None
        self.memory: SmallObjects | None = None
        self._media_stack: ASGIApp | None = None

    def route_media(self, app: ASGIApp, memory: SmallObjects | None = None) -> None:
        """Serve media requests with ``app`` (it finds ``backend`` and ``key`` in ``scope["path_params"]``),
        or from ``memory`` when it has the answer."""
        self.media_app = app
        self.memory = memory
        self._media_stack = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.media_app is not None and scope["type"] == "http" and scope["method"] in MEDIA_METHODS:
            match = MEDIA_ROUTE.fullmatch(scope["path"]) if not scope.get("root_path") else None
            if match is not None:
                scope["app"] = self
                scope["path_params"] = {"backend": match[1], "key": match[2]}
                if self.memory is None or not await self.memory.answer(scope, receive, send):
                    await self._media(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _media(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._media_stack is None:  # built on first use, like Starlette's: middleware is added after __init__
            self._media_stack = self._build_media_stack()
        await self._media_stack(scope, receive, send)

    def _build_media_stack(self) -> ASGIApp:
        assert self.media_app is not None
        app = self.media_app
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return ServerErrorMiddleware(app, debug=self.debug)


def endpoint_app(handle: Callable[[Request], Awaitable[Response]]) -> ASGIApp:
    """A plain ASGI app from a Starlette endpoint (``async def handle(request) -> Response``)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await handle(Request(scope, receive))
        await response(scope, receive, send)

    return app
