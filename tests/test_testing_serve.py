"""mediasrv.testing.serve: the real app with an author's backend on a free port, in-process,
so a plugin's own tests can check 206/304/416 through the core over a socket."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from mediasrv.testing import serve
from mediasrv_local import LocalBackend, LocalSettings

DATA = bytes(range(256)) * 40


def local_backend(root: Path, name: str = "files") -> LocalBackend:
    root.mkdir(exist_ok=True)
    (root / "a b.bin").write_bytes(DATA)
    return LocalBackend(name, LocalSettings(kind="local", root=root, chunk_size=4096))


def test_serve_answers_ranges_and_conditionals_through_the_core(tmp_path: Path) -> None:
    with serve(local_backend(tmp_path / "root")) as served:
        assert served.media_url("a b.bin") == f"{served.url}/media/files/a%20b.bin"
        whole = httpx.get(served.media_url("a b.bin"), timeout=10)
        assert whole.status_code == 200 and whole.content == DATA
        etag = whole.headers["etag"]
        ranged = httpx.get(served.media_url("a b.bin"), headers={"Range": "bytes=100-199"}, timeout=10)
        assert ranged.status_code == 206 and ranged.content == DATA[100:200]
        assert ranged.headers["content-range"] == f"bytes 100-199/{len(DATA)}"
        assert httpx.get(served.media_url("a b.bin"), headers={"If-None-Match": etag}, timeout=10).status_code == 304
        unsatisfiable = httpx.get(served.media_url("a b.bin"), headers={"Range": "bytes=99999-"}, timeout=10)
        assert unsatisfiable.status_code == 416 and unsatisfiable.headers["content-range"] == f"bytes */{len(DATA)}"
        missing = httpx.get(served.media_url("nope.bin"), timeout=10)
        assert missing.status_code == 404 and set(missing.json()) == {"detail"}
        assert httpx.get(f"{served.url}/readyz", timeout=10).status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.get(served.url + "/healthz", timeout=2)  # stopped with the block


@pytest.mark.asyncio
async def test_serve_works_inside_an_async_test(tmp_path: Path) -> None:
    with serve(local_backend(tmp_path / "root", "disk")) as served:
        async with httpx.AsyncClient(timeout=10) as client:
            responses = await asyncio.gather(*(client.get(served.media_url("a b.bin")) for _ in range(4)))
    assert [response.content for response in responses] == [DATA] * 4


def test_serve_reports_a_backend_that_fails_to_start(tmp_path: Path) -> None:
    class Failing(LocalBackend):
        async def start(self) -> None:
            raise ConnectionRefusedError("no source")

    with serve(Failing("broken", LocalSettings(kind="local", root=tmp_path))) as served:
        response = httpx.get(served.media_url("x"), timeout=10)
    assert response.status_code == 503
    assert response.json() == {"detail": "backend 'broken' failed to start"}
