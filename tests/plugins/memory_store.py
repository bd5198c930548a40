"""A test-only result store that keeps variants in this process's memory, configured by a
``[cache.memory]`` table and loaded through settings' ``plugins = ["memory_store"]``, exactly
as a user's unpublished store plugin is. It proves the cache takes any registered store."""

from __future__ import annotations

from collections.abc import Callable

from mediasrv import ByteRange, hookimpl
from mediasrv.cache import ResultKey, ResultStore, StoredResult, StoreError, StoreSettings, StoreStats


class MemoryStoreSettings(StoreSettings):
    max_entries: int = 100
    fail: bool = False  # every call raises StoreError, as a store that is down does


class MemoryStore(ResultStore):
    """Variants in a dict; the oldest dropped beyond ``max_entries``."""

    kind = "memory"
    Settings = MemoryStoreSettings
    settings: MemoryStoreSettings

    def __init__(self, settings: StoreSettings) -> None:
        super().__init__(settings)
        self.entries: dict[ResultKey, StoredResult] = {}

    async def get(self, key: ResultKey, byte_range: ByteRange | None = None) -> StoredResult | None:
        self._check()
        return self.entries.get(key)

    async def put(self, key: ResultKey, result: StoredResult) -> None:
        self._check()
        self.entries[key] = result
        while len(self.entries) > self.settings.max_entries:
            del self.entries[next(iter(self.entries))]

    async def purge(self, source: str) -> int:
        self._check()
        doomed = [key for key in self.entries if key.source == source]
        for key in doomed:
            del self.entries[key]
        return len(doomed)

    async def stats(self) -> StoreStats:
        self._check()
        return StoreStats(len(self.entries), sum(result.size for result in self.entries.values()))

    def _check(self) -> None:
        if self.settings.fail:
            raise StoreError("the memory store was told to fail")


@hookimpl
def mediasrv_register_result_stores(register: Callable[[type[ResultStore]], None]) -> None:
    register(MemoryStore)
