"""The result cache: rendered variants kept in tiers of result stores (disk, then shared
stores such as S3), one render per variant at a time, and a source cache for originals.

Store plugins import what they need from here (or from ``mediasrv``).
"""

from mediasrv.cache.cache import ResultCache
from mediasrv.cache.settings import CacheSettings
from mediasrv.cache.store import (
    ResultKey,
    ResultStore,
    StoredResult,
    StoreError,
    StoreSettings,
    StoreStats,
    source_id,
)

__all__ = [
    "CacheSettings",
    "ResultCache",
    "ResultKey",
    "ResultStore",
    "StoreError",
    "StoreSettings",
    "StoreStats",
    "StoredResult",
    "source_id",
]
