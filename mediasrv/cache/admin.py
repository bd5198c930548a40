"""``/admin/cache``: the tiers as JSON, the purge of one source, and the same on the HTML page."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mediasrv.cache.cache import ResultCache
from mediasrv.errors import MediaError
from mediasrv.keys import validate_key
from mediasrv.registry import BackendRegistry

Page = Callable[[str, int], Awaitable[Response]]

NO_CACHE = "no result cache is configured (set [cache] path, or add a [cache.KIND] store)"
MAX_FORM_BYTES = 16 * 1024


class CacheAdmin:
    """The cache's admin routes; ``cache`` is None when no store is configured."""

    def __init__(self, cache: ResultCache | None, registry: BackendRegistry) -> None:
        self.cache = cache
        self.registry = registry

    def routes(self, page: Page) -> list[Route]:
        """The JSON routes, and the admin page's purge form (``page(notice, status)`` answers the page)."""

        async def purge_form(request: Request) -> Response:
            return await self.purge_form(request, page)

        return [
            Route("/cache", self.stats, methods=["GET"]),
            Route("/cache/purge", purge_form, methods=["POST"]),
            Route("/cache/{backend}/{key:mediakey}", self.purge, methods=["DELETE"]),
        ]

    async def document(self) -> dict[str, Any]:
        """``GET /admin/cache``'s JSON; hits and misses are this worker's."""
        stats: dict[str, Any] = {"tiers": [], "sources": None, "coalesced": 0, "in_flight": 0}
        if self.cache is not None:
            stats = await self.cache.stats()
        return {"enabled": self.cache is not None, "worker_pid": os.getpid(), **stats}

    async def stats(self, request: Request) -> Response:
        return JSONResponse(await self.document())

    async def purge(self, request: Request) -> Response:
        """``DELETE /admin/cache/{backend}/{key}``: drop every variant of one source, every tier."""
        status, document = await self._purge(request.path_params["backend"], request.path_params["key"])
        return JSONResponse(document, status_code=status)

    async def purge_form(self, request: Request, page: Page) -> Response:
        """The admin page's purge form (a browser cannot send DELETE from a form without script).

        Only from the admin page itself: a form on another site could otherwise make an
        admin's browser, which sends its Basic credentials everywhere, purge (CSRF).
        """
        if not _same_origin(request):
            return JSONResponse({"detail": "forbidden: the purge form must come from the admin page"}, 403)
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return JSONResponse({"detail": "form too large"}, 413)
        form = parse_qs(body.decode("utf-8", "replace"))
        backend, key = form.get("backend", [""])[0], form.get("key", [""])[0]
        status, document = await self._purge(backend, key)
        notice = document.get("detail") or f"Purged {backend}/{key}: {_counts(document['purged'])}."
        return await page(notice, status)

    async def _purge(self, backend: str, key: str) -> tuple[int, dict[str, Any]]:
        if self.cache is None:
            return 404, {"detail": NO_CACHE}
        if backend not in self.registry.backends:
            return 404, {"detail": f"no backend named {backend!r}"}
        try:
            key = validate_key(key)
        except MediaError as exc:
            return exc.status, {"detail": exc.detail}
        purged, failed = await self.cache.purge(backend, key)
        document: dict[str, Any] = {"backend": backend, "key": key, "purged": purged}
        if failed:
            failures = "; ".join(f"{tier}: {why}" for tier, why in failed.items())
            return 503, {**document, "failed": failed, "detail": f"purge incomplete: {failures}"}
        return 200, document


def _counts(purged: dict[str, int]) -> str:
    return ", ".join(f"{count} from {tier}" for tier, count in purged.items()) or "no tier"


def _same_origin(request: Request) -> bool:
    """Whether the browser says the form was sent from this origin (Sec-Fetch-Site, else Origin)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin") or request.headers.get("referer")
    return origin is not None and urlsplit(origin).netloc == request.headers.get("host")
