"""Rendered responses of the media endpoint: signature, validators from the source's metadata,
source bytes, the render in the pool, and HTTP semantics on the rendered bytes."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response

from mediasrv.backend import StorageBackend, guarded
from mediasrv.conditional import check_preconditions, conditions_from_headers, range_applies
from mediasrv.connections import find_connection
from mediasrv.errors import (
    BackendUnavailable,
    NotModified,
    PreconditionFailed,
    RenderUnavailable,
    SignatureRejected,
    UnprocessableImage,
)
from mediasrv.metrics import Metrics
from mediasrv.objects import Conditions, ObjectInfo
from mediasrv.observer import RequestRecord
from mediasrv.ranges import parse_range
from mediasrv.responses import Headers, MediaResponse, close_chunks, object_headers, validator_headers
from mediasrv.signing import Signer
from mediasrv.transforms import engine
from mediasrv.transforms.engine import RenderPlan, RenderResult
from mediasrv.transforms.negotiation import format_token
from mediasrv.transforms.operations import Operation
from mediasrv.transforms.options import TransformOptions, parse_transform_query
from mediasrv.transforms.pool import RenderPool
from mediasrv.transforms.settings import TransformSettings

VARY_ACCEPT = (b"vary", b"Accept")


class ImageService:
    """Answers media requests that carry transform parameters."""

    def __init__(
        self,
        settings: TransformSettings,
        operations: Mapping[str, Operation],
        metrics: Metrics,
        signer: Signer | None = None,
        send_timeout: float = 60.0,
    ) -> None:
        self.settings = settings
        self.operations = dict(operations)
        self.metrics = metrics
        self.signer = signer
        self.send_timeout = send_timeout
        self.pool = RenderPool(
            settings.processes,
            settings.queue,
            settings.timeout,
            initializer=engine.configure,
            on_queue_depth=metrics.render_queue_depth.set,
        )
        self.identity = f"{engine.engine_version()} settings/{settings.output_fingerprint()}"

    async def start(self) -> None:
        await self.pool.start()

    async def stop(self) -> None:
        await self.pool.stop()

    def options(self, request: Request) -> TransformOptions | None:
        """The request's transform, or None to serve the original; InvalidTransform (400)."""
        return parse_transform_query(request.query_params.multi_items(), self.settings, self.operations)

    async def respond(
        self, request: Request, backend: StorageBackend, key: str, options: TransformOptions, record: RequestRecord
    ) -> Response:
        """The rendered variant (200/206), or 304/412/416 from the source's metadata alone."""
        record.transform = options.canonical
        self._require_signature(request, options)
        token = format_token(options, request.headers.get("accept"))
        vary = [VARY_ACCEPT] if options.format == "auto" else []
        started = time.perf_counter()
        try:
            info = await guarded(backend, backend.stat(key))
        finally:
            record.open_seconds = time.perf_counter() - started
        variant = self.variant_info(info, options, token)
        conditions = conditions_from_headers(request.headers)
        try:
            check_preconditions(conditions, variant)
        except NotModified:
            return MediaResponse(304, [*validator_headers(variant, backend.settings.cache_control), *vary])
        result = await self._variant(backend, key, info, variant.etag, self.plan(options, token, backend.name))
        variant = replace(variant, size=len(result.body))
        return self._variant_response(request, backend, key, conditions, variant, result, vary)

    def variant_info(self, info: ObjectInfo, options: TransformOptions, token: str) -> ObjectInfo:
        """The variant's validators: a derived ETag (None if the source has no validator) and
        the source's Last-Modified and Cache-Control."""
        return ObjectInfo(
            etag=self.derived_etag(info, options, token),
            last_modified=info.last_modified,
            cache_control=info.cache_control,
        )

    def derived_etag(self, info: ObjectInfo, options: TransformOptions, token: str) -> str | None:
        """A hash of the source's identity, the canonical options, the format token, the engine
        and the output settings: computable before any byte is read. Weak if the source's is."""
        if info.etag is not None:
            weak, source_id = info.etag.startswith("W/"), info.etag.removeprefix("W/")
        elif info.last_modified is not None and info.size is not None:
            weak, source_id = False, f"{info.last_modified.timestamp()}:{info.size}"
        else:
            return None
        material = "\n".join((source_id, options.canonical, token, self.identity))
        digest = hashlib.sha256(material.encode()).hexdigest()[:32]
        return f'{"W/" if weak else ""}"{digest}"'

    def plan(self, options: TransformOptions, token: str, backend: str) -> RenderPlan:
        """The worker's instructions for these options."""
        return render_plan(options, token, self.settings, self.operations, backend)

    async def _variant(
        self, backend: StorageBackend, key: str, info: ObjectInfo, etag: str | None, plan: RenderPlan
    ) -> RenderResult:
        """The source read and rendered. ``etag`` is the variant's derived ETag: the result
        cache wraps this method to look the variant up before any source byte is read."""
        source = await self._timed_fetch(backend, key, info)
        return await self._render_variant(source, plan)

    async def _fetch_source(self, backend: StorageBackend, key: str, info: ObjectInfo) -> bytes:
        """The source's bytes, at most ``max_source_bytes`` (422 beyond, reading stops there);
        the version ``info`` describes (503 if it changed meanwhile)."""
        limit = self.settings.max_source_bytes
        if info.size is not None and info.size > limit:
            raise UnprocessableImage(f"source is {info.size} bytes, over max_source_bytes {limit}")
        same_version = Conditions(if_match=info.etag) if info.etag and not info.etag.startswith("W/") else Conditions()
        stream = await guarded(backend, backend.open(key, None, same_version))
        try:
            check_preconditions(same_version, stream.info)
            parts: list[bytes] = []
            size = 0
            async for chunk in stream.chunks:
                size += len(chunk)
                if size > limit:
                    raise UnprocessableImage(f"source is over max_source_bytes {limit}")
                parts.append(chunk)
            return b"".join(parts)
        except PreconditionFailed:
            raise BackendUnavailable("source changed while it was read; try again", retry_after=1) from None
        finally:
            await close_chunks(stream.chunks)

    async def _render_variant(self, source: bytes, plan: RenderPlan) -> RenderResult:
        """Render in the pool; counts the render and its stages, and the rejections."""
        try:
            result = await self.pool.submit(engine.render, source, plan)
        except RenderUnavailable as exc:
            self.metrics.render_rejections.labels(exc.reason).inc()
            raise
        self.metrics.renders.labels(plan.backend, result.format).inc()
        self.metrics.render_seconds.labels("transform").observe(result.transform_seconds)
        self.metrics.render_seconds.labels("encode").observe(result.encode_seconds)
        return result

    async def _timed_fetch(self, backend: StorageBackend, key: str, info: ObjectInfo) -> bytes:
        started = time.perf_counter()
        try:
            return await self._fetch_source(backend, key, info)
        finally:
            self.metrics.render_seconds.labels("fetch").observe(time.perf_counter() - started)

    def _require_signature(self, request: Request, options: TransformOptions) -> None:
        """Arbitrary parameters need a valid signature unless allow_unsigned; presets never do."""
        if not options.needs_signature or self.settings.allow_unsigned:
            return
        if self.signer is None:
            raise SignatureRejected("signature_missing")
        self.signer.require(request)

    def _variant_response(
        self,
        request: Request,
        backend: StorageBackend,
        key: str,
        conditions: Conditions,
        variant: ObjectInfo,
        result: RenderResult,
        vary: Headers,
    ) -> Response:
        body = result.body
        info = replace(variant, content_type=result.content_type)
        byte_range = parse_range(request.headers.get("range"))
        content_range = None
        if byte_range is not None and range_applies(conditions, info):
            content_range = byte_range.resolve(len(body))
            body = body[content_range.first : content_range.last + 1]
        headers = [*object_headers(info, key, backend.settings.cache_control, content_range), *vary]
        return MediaResponse(
            206 if content_range is not None else 200,
            headers,
            None if request.method == "HEAD" else _Body(body),
            content_length=len(body),
            connection=find_connection(request.scope),
            send_timeout=self.send_timeout,
        )


def render_plan(
    options: TransformOptions,
    token: str,
    settings: TransformSettings,
    operations: Mapping[str, Operation],
    backend: str = "",
) -> RenderPlan:
    """The worker's instructions: the options, their operations' functions, the settings that apply."""
    return RenderPlan(
        width=options.width,
        height=options.height,
        fit=options.fit,
        gravity=options.gravity,
        enlarge=options.enlarge,
        format=options.format,
        format_token=token,
        quality=options.quality,
        steps=tuple((operations[name].apply, value) for name, value in options.operations),
        qualities=tuple(settings.quality.model_dump().items()),
        avif_effort=settings.effort.avif,
        webp_effort=settings.effort.webp,
        max_source_pixels=settings.max_source_pixels,
        max_dimension=settings.max_dimension,
        animation=settings.animation,
        backend=backend,
    )


class _Body:
    """Rendered bytes as the one chunk of a MediaResponse (the Chunks contract)."""

    def __init__(self, body: bytes) -> None:
        self._body: bytes | None = body

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        if self._body is None:
            raise StopAsyncIteration
        body, self._body = self._body, None
        return body

    async def aclose(self) -> None:
        self._body = None
