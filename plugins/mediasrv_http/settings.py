"""``[backends.NAME]`` with ``kind = "http"``: checked once, at start-up."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator
from yarl import URL

from mediasrv import BackendSettings, is_header_safe, is_token, starts_with_scheme
from mediasrv_http.urls import parse_base_url, same_origin

# Headers mediasrv sets on each upstream request itself; a configured one would fight them.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "te",
        "trailer",
        "accept-encoding",
        "range",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "if-range",
    }
)


class HttpSettings(BackendSettings):
    """``[backends.NAME]`` with ``kind = "http"``."""

    base_url: str = Field(description="objects are fetched from base_url + key")
    timeout: float = Field(default=10, gt=0, le=3600, description="connect and per-read, seconds; no total cap")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="sent upstream; values are secrets")
    max_connections: int = Field(default=64, ge=1, le=10000, description="upstream connections, per worker")
    health_path: str = Field(default="", description="HEAD target of health(); empty: base_url")

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        return str(parse_base_url(value))

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, value in headers.items():
            if not is_token(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP token")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by mediasrv itself and cannot be configured")
            if not is_header_safe(value.get_secret_value()):
                # The value is a secret: never quote it.
                raise ValueError(f"the value of header {name!r} contains a control character")
        return headers

    @field_validator("health_path")
    @classmethod
    def _check_health_path(cls, value: str) -> str:
        if value.startswith("//") or "\\" in value or "#" in value or not is_header_safe(value):
            raise ValueError("must be a path, relative to base_url or starting with '/'")
        if starts_with_scheme(value):
            raise ValueError("must be a path, not a URL (the host is base_url's)")
        return value

    @model_validator(mode="after")
    def _health_url_stays_on_the_host(self) -> Self:
        if not same_origin(self.base, self.health_url):
            raise ValueError("health_path leads to another origin")
        return self

    @property
    def base(self) -> URL:
        """``base_url`` as a URL, keys are appended to its path."""
        return URL(self.base_url, encoded=True)

    @property
    def health_url(self) -> URL:
        """What ``health()`` sends its HEAD to: ``health_path`` on ``base_url``, or ``base_url``."""
        return self.base.join(URL(self.health_path)) if self.health_path else self.base
