"""The ASGI application: built from settings and a plugin manager."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediasrv import __version__
from mediasrv.accesslog import AccessLog
from mediasrv.admin import admin_app
from mediasrv.cache.admin import CacheAdmin
from mediasrv.cache.cache import ResultCache
from mediasrv.cache.metrics import CacheMetrics
from mediasrv.cache.service import CachedImageService
from mediasrv.configuration import Configuration, load_configuration
from mediasrv.content_types import NOSNIFF_HEADER
from mediasrv.demo import DemoPage
from mediasrv.fastpath import MediaServer, endpoint_app
from mediasrv.health import HealthMonitor
from mediasrv.inventory import Inventory
from mediasrv.limits import StreamLimiter
from mediasrv.media import MediaEndpoint
from mediasrv.metrics import Metrics
from mediasrv.objectcache import SmallObjectCache, SmallObjects
from mediasrv.observer import Observer, RequestObserver, log_line
from mediasrv.probes import probe_routes
from mediasrv.protocol import set_protocol_limits
from mediasrv.responses import MediaResponse
from mediasrv.settings import CONFIG_ENV
from mediasrv.signing import Signer
from mediasrv.transforms.service import ImageService

MEDIA_PREFIX = "/media"


class MediaKeyConvertor(Convertor[str]):
    """Like ``path``, but matches newlines too, so that such a key reaches validate_key (400)
    instead of missing the route (404)."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("mediakey", MediaKeyConvertor())


def create_app(configuration: Configuration) -> FastAPI:
    """The app serving the configured backends."""
    settings, registry = configuration.settings, configuration.registry
    metrics = Metrics()
    signer = settings.signing.signer()
    cache = _result_cache(configuration, metrics)
    images = _image_service(configuration, metrics, signer, cache)
    limiter = StreamLimiter(settings.server.max_streams, settings.server.max_streams_per_client)
    media = MediaEndpoint(registry, limiter, settings.server.send_timeout, signer, images)
    monitor = HealthMonitor(registry, settings.admin.health_timeout, settings.admin.health_cache)
    inventory = Inventory.of(configuration, monitor)
    access_log = AccessLog(log_line, on_dropped=metrics.access_log_dropped.inc) if settings.server.access_log else None
    observer = Observer(metrics, access_log)
    memory = _small_objects(configuration, limiter, observer, cache)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await registry.start()
        if cache is not None:
            await cache.start()
        await images.start()
        try:
            yield
        finally:
            # Streams cut at shutdown end just now: let them close their sources and write
            # their log lines before the backends and the log close under them.
            await observer.in_flight.wait_idle(MediaResponse.close_timeout + 1)
            await images.stop()
            if cache is not None:
                await cache.stop()
            await registry.stop()
            metrics.worker_exiting()
            if access_log is not None:
                access_log.close()

    app = MediaServer(
        title="mediasrv",
        version=__version__,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,  # Starlette's redirect puts the client's Host into Location: 404 instead
    )
    app.state.settings = settings
    app.add_route(f"{MEDIA_PREFIX}/{{backend}}/{{key:mediakey}}", media.handle, methods=["GET", "HEAD"])
    endpoint = endpoint_app(media.handle)
    app.route_media(memory.keeper(endpoint) if memory else endpoint, memory)
    app.router.routes.extend(probe_routes(monitor, metrics))
    if settings.server.demo:
        demo = DemoPage(registry, settings.server.demo_backend, images.describe)
        app.add_route("/demo/", demo.handle, methods=["GET", "HEAD"])
    token = settings.admin.token.get_secret_value()
    app.mount("/admin", admin_app(inventory, token, settings.signing, CacheAdmin(cache, registry)))
    app.add_middleware(NoSniffMiddleware)
    app.add_middleware(RequestObserver, observer=observer)
    return app


def _small_objects(
    configuration: Configuration, limiter: StreamLimiter, observer: Observer, cache: ResultCache | None
) -> SmallObjects | None:
    """The memory cache of small answers, unless ``[small_objects] max_bytes = 0``."""
    settings = configuration.settings
    if settings.small_objects.max_bytes == 0:
        return None
    kept = SmallObjectCache(settings.small_objects.max_bytes, settings.small_objects.max_object_bytes)
    purge_epoch = cache.purge_epoch if cache is not None else None
    return SmallObjects(configuration.registry, limiter, settings.server.send_timeout, kept, observer, purge_epoch)


def _image_service(
    configuration: Configuration, metrics: Metrics, signer: Signer | None, cache: ResultCache | None
) -> ImageService:
    """The transform service, with the result cache around its render seams when there is one."""
    settings = configuration.settings
    arguments = (settings.transforms, configuration.operations, metrics, signer)
    if cache is None:
        return ImageService(*arguments, send_timeout=settings.server.send_timeout)
    return CachedImageService(*arguments, send_timeout=settings.server.send_timeout, cache=cache)


def _result_cache(configuration: Configuration, metrics: Metrics) -> ResultCache | None:
    """The result cache over the configured stores, or None when ``[cache]`` configures none."""
    if not configuration.stores:
        return None
    settings = configuration.settings.cache
    return ResultCache(
        configuration.stores, CacheMetrics(metrics.registry), settings.lock_timeout, settings.log_interval
    )


def build_app(config: str | os.PathLike[str] | None = None) -> FastAPI:
    """The app for a settings file (``config``, else ``$MEDIASRV_CONFIG``, else ./settings.toml).

    Raises ConfigError or PluginError, with one line naming the file or plugin, before anything is served.
    """
    return create_app(load_configuration(config))


def app_from_environment() -> FastAPI:
    """uvicorn's app factory for ``mediasrv serve``: reads ``$MEDIASRV_CONFIG`` in each worker."""
    app = build_app(os.environ.get(CONFIG_ENV))
    set_protocol_limits(app.state.settings.server)
    return app


class NoSniffMiddleware:
    """Adds ``X-Content-Type-Options: nosniff`` to every response under /media/, errors included."""

    header = NOSNIFF_HEADER

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != MEDIA_PREFIX and not path.startswith(MEDIA_PREFIX + "/"):
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self.header]}
            await send(message)

        await self.app(scope, receive, send_with_header)
