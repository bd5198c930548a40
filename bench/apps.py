"""The apps mediasrv is compared with, each run in its own process by bench.servers.

Configured through the environment (``BENCH_ROOT``, ``BENCH_S3_ENDPOINT``, ``BENCH_BUCKET``)
because uvicorn imports them by name:

- ``files_app``: the minimal Starlette app serving a folder with ``FileResponse``;
- ``naive_s3_app``: the trap of PITFALLS.md 8 and 9, reproduced as it is usually written: a
  client created per request, the body iterated with ``async for`` (1 KiB at a time);
- ``sync_s3_app``: the sync botocore pattern: one boto3 client, ``get_object()["Body"]``
  iterated by its default iterator (1 KiB) in a sync generator, which Starlette runs in
  its thread pool one chunk at a time;
- ``upstream_app``: an aiohttp static file server, the HTTP backend's upstream;
- ``ceiling_app``: a bare ASGI app answering every request with the bytes of one file under
  ``BENCH_ROOT`` (``BENCH_CEILING_FILE``), read once into memory: no framework, no disk, no
  work, so its requests per second are the most any app can get from this uvicorn.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import boto3
from aiobotocore.session import get_session
from aiohttp import web
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bench.servers import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY


def _s3_arguments() -> dict[str, Any]:
    return {
        "endpoint_url": os.environ["BENCH_S3_ENDPOINT"],
        "region_name": REGION,
        "aws_access_key_id": ACCESS_KEY_ID,
        "aws_secret_access_key": SECRET_ACCESS_KEY,
    }


async def serve_file(request: Request) -> Response:
    """``FileResponse`` for a file under ``BENCH_ROOT``, as the Starlette docs show it."""
    return FileResponse(Path(os.environ["BENCH_ROOT"]) / request.path_params["key"])


async def naive_s3_get(request: Request) -> Response:
    """A client per request, and the body's own ``async for``."""
    key = request.path_params["key"]

    async def body() -> AsyncIterator[bytes]:
        async with get_session().create_client("s3", **_s3_arguments()) as client:
            answer = await client.get_object(Bucket=os.environ["BENCH_BUCKET"], Key=key)
            async for chunk in answer["Body"]:
                yield chunk

    return StreamingResponse(body(), media_type="application/octet-stream")


@cache
def _boto3_client() -> Any:
    return boto3.client("s3", **_s3_arguments())


def sync_s3_get(request: Request) -> Response:
    """One shared boto3 client; the body's default iterator in a sync generator."""
    answer = _boto3_client().get_object(Bucket=os.environ["BENCH_BUCKET"], Key=request.path_params["key"])

    def body() -> Iterator[bytes]:
        yield from answer["Body"]

    return StreamingResponse(body(), media_type="application/octet-stream")


@cache
def _ceiling_response() -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = (Path(os.environ["BENCH_ROOT"]) / os.environ["BENCH_CEILING_FILE"]).read_bytes()
    headers = [(b"content-type", b"image/jpeg"), (b"content-length", str(len(body)).encode())]
    return headers, body


async def ceiling_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The same bytes for every HTTP request, from memory, headers prebuilt."""
    if scope["type"] != "http":
        return  # lifespan: nothing to set up (uvicorn's "auto" mode carries on without it)
    headers, body = _ceiling_response()
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


files_app = Starlette(routes=[Route("/files/{key:path}", serve_file)])
naive_s3_app = Starlette(routes=[Route("/s3/{key:path}", naive_s3_get)])
sync_s3_app = Starlette(routes=[Route("/s3/{key:path}", sync_s3_get)])


def upstream_app(argv: list[str]) -> web.Application:
    """aiohttp's static files (sendfile) for the folder ``argv[0]``; for ``python -m aiohttp.web``."""
    app = web.Application()
    app.router.add_static("/", argv[0])
    return app
