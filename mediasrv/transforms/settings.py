"""``[transforms]``: the render pool, the limits on sources and outputs, encoder defaults, presets."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, Field

PresetValue = str | int | float | bool


class QualitySettings(BaseModel):
    """Encoder quality (1-100) per output format when the request gives none.

    PNG is lossless at 100; below, it is quantised to a palette at that quality.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    jpeg: int = Field(default=80, ge=1, le=100)
    webp: int = Field(default=80, ge=1, le=100)
    avif: int = Field(default=60, ge=1, le=100)
    png: int = Field(default=100, ge=1, le=100)


class EffortSettings(BaseModel):
    """Encoder CPU effort: AVIF 0-9 (libvips' default 4 costs ~14x effort 2 for the same size),
    WebP 0-6."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    avif: int = Field(default=2, ge=0, le=9)
    webp: int = Field(default=4, ge=0, le=6)


class TransformSettings(BaseModel):
    """``[transforms]`` of settings.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_unsigned: bool = Field(default=False, description="arbitrary parameters without a signature")
    processes: int = Field(default=0, ge=0, le=256, description="render processes; 0: one per core")
    queue: int = Field(default=64, ge=0, description="renders waiting per server worker; beyond: 503")
    timeout: float = Field(default=10, gt=0, description="seconds per render")
    max_source_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    max_source_pixels: int = Field(default=50_000_000, ge=1, description="width x height (x frames) of a source")
    max_dimension: int = Field(default=4096, ge=1, le=16384, description="largest output width or height")
    animation: bool = Field(default=False, description="keep every frame of animated GIF/WebP (else the first)")
    quality: QualitySettings = QualitySettings()
    effort: EffortSettings = EffortSettings()
    presets: dict[str, dict[str, PresetValue]] = {}

    def output_fingerprint(self) -> str:
        """A digest of the settings that change rendered bytes, so that changing one changes
        every derived ETag (presets are resolved into each request's options instead)."""
        relevant = {
            "max_dimension": self.max_dimension,
            "animation": self.animation,
            "quality": self.quality.model_dump(),
            "effort": self.effort.model_dump(),
        }
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]
