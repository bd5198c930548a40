"""``[cache]``: the disk tier's folder and bounds, and one sub-table per further result store."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

GIB = 1024**3
MIB = 1024**2


class CacheSettings(BaseModel):
    """``[cache]``. Its keys configure the built-in disk tier; every sub-table ``[cache.KIND]``
    configures a further store of that kind (``[cache.s3]``), validated by that store's
    ``Settings`` at start-up. Stores are looked up disk first, then in the file's order."""

    model_config = ConfigDict(extra="allow")

    path: str = Field(default="", description="the disk tier's folder; empty: no disk tier and no source cache")
    max_bytes: int = Field(default=GIB, ge=MIB, description="rendered results kept on disk")
    source_max_bytes: int = Field(default=256 * MIB, ge=0, description="originals kept for rendering; 0: none")
    lock_timeout: float = Field(default=15, gt=0, description="seconds to wait for another process's render")
    log_interval: float = Field(default=60, gt=0, description="seconds between two log lines of one problem")

    @model_validator(mode="after")
    def _stores_are_tables(self) -> CacheSettings:
        for kind, table in (self.model_extra or {}).items():
            if not isinstance(table, dict):
                raise ValueError(f"unknown key {kind!r} (a store is a table: [cache.{kind}])")
        return self

    def store_tables(self) -> dict[str, dict[str, Any]]:
        """The ``[cache.KIND]`` tables, by kind, in the file's order."""
        return dict(self.model_extra or {})
