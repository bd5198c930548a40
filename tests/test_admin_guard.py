"""Who may pass the admin guard, for client addresses a loopback-only test server can't have."""

from __future__ import annotations

import base64

import httpx
import pytest
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from mediasrv.admin import AdminGuard


async def inner(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("admin")(scope, receive, send)


async def status_for(client: tuple[str, int], token: str = "", **headers: str) -> int:
    transport = httpx.ASGITransport(app=AdminGuard(inner, token), client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://mediasrv") as http:
        return (await http.get("/backends", headers=headers)).status_code


@pytest.mark.asyncio
@pytest.mark.parametrize("address", ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"])
async def test_loopback_clients_pass_without_a_token(address: str) -> None:
    assert await status_for((address, 5000)) == 200


@pytest.mark.asyncio
@pytest.mark.parametrize("address", ["192.0.2.7", "10.0.0.1", "::ffff:192.0.2.7", "2001:db8::1", "testclient"])
async def test_other_clients_are_403_without_a_token(address: str) -> None:
    assert await status_for((address, 5000)) == 403


@pytest.mark.asyncio
async def test_other_clients_pass_with_the_token() -> None:
    assert await status_for(("192.0.2.7", 5000), token="t0k", Authorization="Bearer t0k") == 200
    basic = base64.b64encode(b"anyone:t0k").decode()
    assert await status_for(("192.0.2.7", 5000), token="t0k", Authorization=f"Basic {basic}") == 200


@pytest.mark.asyncio
async def test_with_a_token_loopback_clients_need_it_too() -> None:
    assert await status_for(("127.0.0.1", 5000), token="t0k") == 401
