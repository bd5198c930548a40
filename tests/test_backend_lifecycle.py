"""Every built-in backend that holds a pooled client says so the same way when used outside
its lifetime: 503 "is not started", never an AttributeError (a 502 and a traceback)."""

from __future__ import annotations

import pytest

from mediasrv import BackendUnavailable, Conditions, StorageBackend
from mediasrv_http import HttpBackend, HttpSettings
from mediasrv_s3 import S3Backend, S3Settings


def unstarted_backends() -> list[StorageBackend]:
    return [
        HttpBackend("cdn", HttpSettings(kind="http", base_url="http://127.0.0.1:9/")),
        S3Backend("photos", S3Settings(kind="s3", bucket="b", endpoint_url="http://127.0.0.1:9")),
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize("index", range(len(unstarted_backends())))
async def test_a_backend_before_start_and_after_stop_is_unavailable(index: int) -> None:
    backend = unstarted_backends()[index]
    with pytest.raises(BackendUnavailable, match=f"backend {backend.name!r} is not started"):
        await backend.open("a.jpg", None, Conditions())
    await backend.start()
    await backend.stop()
    with pytest.raises(BackendUnavailable, match="is not started"):
        await backend.stat("a.jpg")
