"""Runs the app under uvicorn, with mediasrv's connection-tracking HTTP protocol."""

from __future__ import annotations

import copy
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from mediasrv.connections import ConnectionTrackingMixin
from mediasrv.metrics import MULTIPROCESS_ENV
from mediasrv.protocol import LimitedHttpToolsProtocol
from mediasrv.settings import CONFIG_ENV, Settings


class TrackingHttpToolsProtocol(ConnectionTrackingMixin, LimitedHttpToolsProtocol):
    """uvicorn's httptools protocol with mediasrv's connection limits (see mediasrv.protocol),
    recording its transport (see mediasrv.connections)."""


def log_config() -> dict[str, Any]:
    """uvicorn's logging set-up, plus the ``mediasrv`` logger on the same handler (stderr)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["mediasrv"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def serve(config_path: Path, settings: Settings) -> None:
    """Serve until interrupted. Each worker builds its app from ``config_path`` and the environment."""
    os.environ[CONFIG_ENV] = str(config_path)
    with ExitStack() as stack:
        if settings.server.workers > 1 and MULTIPROCESS_ENV not in os.environ:
            # Set before the workers start (and import prometheus-client), so they share metrics.
            os.environ[MULTIPROCESS_ENV] = stack.enter_context(tempfile.TemporaryDirectory(prefix="mediasrv-metrics-"))
        _run_uvicorn(settings)


def _run_uvicorn(settings: Settings) -> None:
    server = settings.server
    uvicorn.run(
        "mediasrv.app:app_from_environment",
        factory=True,
        host=server.host,
        port=server.port,
        workers=server.workers,
        http=TrackingHttpToolsProtocol,
        lifespan="on",
        # The client address must be the real peer: admin access and connection tracking use it.
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=server.shutdown_timeout,
        access_log=False,  # mediasrv.accesslog writes its own, with backend, key and bytes
        log_config=log_config(),
    )
