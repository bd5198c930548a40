"""The real mediasrv app serving one backend on a free 127.0.0.1 port, for a plugin's own tests
(``mediasrv.testing.serve``): 206, 304, 416 and aborted transfers through the core, over a socket."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pluggy
import uvicorn

from mediasrv import hookspecs
from mediasrv.app import create_app
from mediasrv.backend import StorageBackend
from mediasrv.configuration import Configuration
from mediasrv.plugins import BackendKind
from mediasrv.registry import BackendRegistry
from mediasrv.server import TrackingHttpToolsProtocol
from mediasrv.settings import ServerSettings, Settings

START_TIMEOUT = 10.0


@dataclass(frozen=True)
class ServedApp:
    """A running server: ``url`` is its origin, ``media_url(key)`` the URL of one object."""

    url: str
    backend: StorageBackend

    def media_url(self, key: str) -> str:
        """``/media/{backend}/{key}`` on this server, the key percent-encoded as a client would."""
        return f"{self.url}/media/{self.backend.name}/{quote(key)}"


@contextmanager
def serve(backend: StorageBackend, send_timeout: float = 10.0) -> Iterator[ServedApp]:
    """Serve ``backend`` (not started: the server starts and stops it) through the real app,
    under uvicorn in a thread of its own, on a free 127.0.0.1 port, for the ``with`` block::

        with serve(MyBackend("photos", MySettings(kind="mine", ...))) as served:
            response = httpx.get(served.media_url("cat.jpg"), headers={"Range": "bytes=0-99"})
            assert response.status_code == 206

    Works from sync and async tests alike (the server has its own event loop); the backend's
    objects must be in its source before the request.
    """
    settings = Settings(server=ServerSettings(host="127.0.0.1", port=0, access_log=False, send_timeout=send_timeout))
    app = create_app(_configuration(backend, settings))
    config = uvicorn.Config(
        app,
        http=TrackingHttpToolsProtocol,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="mediasrv-testing", daemon=True)
        thread.start()
        try:
            _wait_started(server, thread)
            yield ServedApp(f"http://127.0.0.1:{sock.getsockname()[1]}", backend)
        finally:
            server.should_exit = True
            thread.join(START_TIMEOUT)


def _configuration(backend: StorageBackend, settings: Settings) -> Configuration:
    """The configuration ``mediasrv serve`` would load for a settings file naming only ``backend``."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    kinds = {backend.kind: BackendKind(type(backend), type(backend).__module__)}
    registry = BackendRegistry({backend.name: backend})
    return Configuration(Path("<mediasrv.testing.serve>"), settings, pm, kinds, registry)


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    thread.join(0.01)
    waited = 0.0
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("mediasrv.testing.serve: the server stopped during start-up")
        if waited >= START_TIMEOUT:
            raise RuntimeError(f"mediasrv.testing.serve: the server did not start within {START_TIMEOUT}s")
        thread.join(0.01)
        waited += 0.01
