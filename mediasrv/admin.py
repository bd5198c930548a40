"""``/admin``: the backends and plugins as JSON and as an HTML page, behind the admin guard."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediasrv.admin_page import render_admin_page
from mediasrv.cache.admin import CacheAdmin
from mediasrv.inventory import Inventory
from mediasrv.redaction import MASK
from mediasrv.signing import SigningSettings

# A request carrying any of these came through a proxy (RFC 9110 requires proxies to add Via).
PROXY_HEADERS = frozenset(
    {
        "forwarded",
        "via",
        "x-real-ip",
        "x-client-ip",
        "x-cluster-client-ip",
        "client-ip",
        "true-client-ip",
        "cf-connecting-ip",
        "fastly-client-ip",
        "x-original-forwarded-for",
        "x-proxyuser-ip",
    }
)
PROXY_HEADER_PREFIXES = ("x-forwarded",)  # -for, -host, -proto, -port, -server, -prefix, x-forwarded itself
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'"


def admin_app(
    inventory: Inventory, token: str, signing: SigningSettings | None = None, cache: CacheAdmin | None = None
) -> ASGIApp:
    """The ``/admin`` routes, guarded."""

    async def page_response(notice: str = "", status: int = 200) -> Response:
        cache_document = await cache.document() if cache is not None else None
        html = render_admin_page(await inventory.backends(), inventory.plugin_list(), cache_document, notice)
        return HTMLResponse(html, status_code=status, headers={"content-security-policy": PAGE_POLICY})

    async def page(request: Request) -> Response:
        return await page_response()

    async def backends(request: Request) -> Response:
        return JSONResponse({"backends": await inventory.backends()})

    async def backend(request: Request) -> Response:
        name = request.path_params["name"]
        listing = await inventory.backend(name)
        if listing is None:
            return JSONResponse({"detail": f"no backend named {name!r}"}, status_code=404)
        return JSONResponse(listing)

    async def plugins(request: Request) -> Response:
        return JSONResponse({"plugins": inventory.plugin_list()})

    async def signing_keys(request: Request) -> Response:
        keys = signing.keys if signing is not None else []
        backends = inventory.registry.backends
        signed = [name for name, backend in backends.items() if backend.settings.access == "signed"]
        return JSONResponse({"keys": [MASK for _ in keys], "signed_backends": signed})

    router = Router(
        redirect_slashes=False,  # its redirect would carry the client's Host header
        routes=[
            Route("/", page, methods=["GET", "HEAD"]),
            Route("/backends", backends, methods=["GET"]),
            Route("/backends/{name}", backend, methods=["GET"]),
            Route("/plugins", plugins, methods=["GET"]),
            Route("/signing", signing_keys, methods=["GET"]),
            *(cache.routes(page_response) if cache is not None else []),
        ]
    )
    return AdminGuard(router, token)


class AdminGuard:
    """Lets a request through to ``app`` only if it may see the admin pages.

    With a token: ``Authorization: Bearer <token>``, or Basic auth with the token as the
    password (any user name), compared in constant time; else 401. Without a token: direct
    loopback clients only; a request carrying a proxy header came through a proxy on this
    host and is refused like a remote one (403).
    """

    realm = 'realm="mediasrv admin"'

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        denial = self.deny(scope)
        if denial is not None:
            await denial(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), (b"cache-control", b"no-store")]}
            await send(message)

        await self.app(scope, receive, send_no_store)

    def deny(self, scope: Scope) -> Response | None:
        """The 401 or 403 for a request that may not pass, else None."""
        headers = Headers(scope=scope)
        if self.token:
            if self._token_matches(headers.get("authorization", "")):
                return None
            return self._unauthorized()
        if any(_is_proxy_header(name) for name in headers):
            return _forbidden("came through a proxy; set [admin] token to allow /admin from other hosts")
        client = scope.get("client")
        if not client or not _is_loopback(client[0]):
            return _forbidden("only loopback clients may use /admin without a token; set [admin] token")
        return None

    def _token_matches(self, authorization: str) -> bool:
        scheme, _, credentials = authorization.strip().partition(" ")
        presented = credentials.strip().encode()
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(presented, validate=True)
            except binascii.Error:
                return False
            presented = decoded.partition(b":")[2]
        elif scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(presented, self.token)

    def _unauthorized(self) -> Response:
        response = JSONResponse({"detail": "admin token required"}, status_code=401)
        response.headers.append("www-authenticate", f"Bearer {self.realm}")
        response.headers.append("www-authenticate", f'Basic {self.realm}, charset="UTF-8"')
        response.headers["cache-control"] = "no-store"
        return response


def _is_proxy_header(name: str) -> bool:
    return name in PROXY_HEADERS or name.startswith(PROXY_HEADER_PREFIXES)


def _forbidden(detail: str) -> Response:
    return JSONResponse({"detail": f"forbidden: {detail}"}, status_code=403, headers={"cache-control": "no-store"})


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a Unix socket's path, or no address at all
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
