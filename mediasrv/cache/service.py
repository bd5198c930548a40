"""ImageService with the result cache around its seams: a variant is looked up (disk, shared
stores) before its source is read, and a source read for rendering is kept by its ETag."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mediasrv.backend import StorageBackend
from mediasrv.cache.cache import ResultCache
from mediasrv.cache.store import StoredResult
from mediasrv.objects import ObjectInfo
from mediasrv.transforms.engine import RenderPlan, RenderResult
from mediasrv.transforms.service import ImageService


class CachedImageService(ImageService):
    """Renders each variant once per cache (per fleet, with a shared store)."""

    def __init__(self, *args: Any, cache: ResultCache, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache = cache

    async def _variant(
        self, backend: StorageBackend, key: str, info: ObjectInfo, etag: str | None, plan: RenderPlan
    ) -> RenderResult:
        if etag is None:  # a source with no validator: nothing to key the variant by
            return await super()._variant(backend, key, info, etag, plan)
        render = super()._variant

        async def rendered() -> StoredResult:
            result = await render(backend, key, info, etag, plan)
            return StoredResult.whole(result.body, result.content_type, etag, _metadata(result))

        stored = await self.cache.result(backend.name, key, etag, None, rendered)
        return _render_result(stored)

    async def _fetch_source(self, backend: StorageBackend, key: str, info: ObjectInfo) -> bytes:
        fetch = super()._fetch_source
        return await self.cache.source(backend.name, key, info, lambda: fetch(backend, key, info))


def _metadata(result: RenderResult) -> dict[str, str]:
    return {"format": result.format, "width": str(result.width), "height": str(result.height)}


def _render_result(stored: StoredResult) -> RenderResult:
    metadata: Mapping[str, str] = stored.metadata
    return RenderResult(
        stored.body,
        stored.content_type,
        metadata.get("format", ""),
        int(metadata.get("width", 0)),
        int(metadata.get("height", 0)),
    )
