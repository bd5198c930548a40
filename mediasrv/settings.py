"""mediasrv's settings: a TOML file, overridden by ``MEDIASRV_*`` environment variables,
overridden by command-line flags."""

from __future__ import annotations

import os
import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from mediasrv.cache.settings import CacheSettings
from mediasrv.objectcache import SmallObjectSettings
from mediasrv.signing import SigningSettings
from mediasrv.transforms.settings import TransformSettings

DEFAULT_FILE = "settings.toml"
CONFIG_ENV = "MEDIASRV_CONFIG"
ENV_PREFIX = "MEDIASRV_"
ENV_DELIMITER = "__"
BACKEND_NAME_PATTERN = r"[a-z0-9][a-z0-9_-]*"

_settings_file: ContextVar[Path | None] = ContextVar("_settings_file", default=None)


class ConfigError(Exception):
    """The settings file is missing or invalid; the message is one line naming file and key."""


class ServerSettings(BaseModel):
    """``[server]``: where to listen and the per-worker limits."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=256)
    max_streams: int = Field(default=1000, ge=1, description="concurrent GET bodies per worker")
    send_timeout: float = Field(default=60, gt=0, description="seconds a client may accept no bytes")
    shutdown_timeout: int = Field(default=10, ge=0, description="seconds open streams get on shutdown")
    access_log: bool = Field(default=True, description="one JSON line per request on stdout")
    header_timeout: float = Field(default=10, gt=0, description="seconds a request head may take to arrive")
    max_head_bytes: int = Field(default=65536, ge=1024, description="request line and headers, in bytes")
    max_connections: int = Field(default=10000, ge=1, description="open client connections per worker")
    max_streams_per_client: int = Field(
        default=32, ge=0, description="concurrent GET bodies per client address; 0: no cap (behind a CDN)"
    )
    demo: bool = Field(default=False, description="GET /demo/: the images of demo_backend, as a front end shows them")
    demo_backend: str = Field(default="local", description="the folder (local) backend /demo/ lists")


class AdminSettings(BaseModel):
    """``[admin]``: access to /admin, and the backend health checks behind it and /readyz."""

    model_config = ConfigDict(extra="forbid")

    token: SecretStr = SecretStr("")
    health_timeout: float = Field(default=5, gt=0, description="seconds a backend's health check may take")
    health_cache: float = Field(default=5, ge=0, description="seconds a health result is reused")


class Settings(BaseSettings):
    """The whole settings file. Backend tables stay raw here: each is validated by the
    ``Settings`` model of the backend kind it names (see ``mediasrv.registry``)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        extra="forbid",
        case_sensitive=False,
    )

    plugins: list[str] = []
    server: ServerSettings = ServerSettings()
    admin: AdminSettings = AdminSettings()
    signing: SigningSettings = SigningSettings()
    transforms: TransformSettings = TransformSettings()
    small_objects: SmallObjectSettings = SmallObjectSettings()
    backends: dict[str, dict[str, Any]] = {}
    cache: CacheSettings = CacheSettings()

    @field_validator("backends")
    @classmethod
    def _check_backend_names(cls, backends: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name in backends:
            if not re.fullmatch(BACKEND_NAME_PATTERN, name):
                raise ValueError(f"backend name {name!r} must match {BACKEND_NAME_PATTERN}")
        return backends

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest first: command-line flags (init), then the environment, then the file.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, _settings_file.get()))


def find_settings_file(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--config``, else ``$MEDIASRV_CONFIG``, else ``./settings.toml``, made absolute."""
    chosen = explicit or os.environ.get(CONFIG_ENV) or DEFAULT_FILE
    return Path(chosen).expanduser().absolute()


def load_settings(path: Path, overrides: dict[str, Any] | None = None) -> Settings:
    """Read ``path`` and the environment, apply ``overrides`` (flags); ConfigError if invalid."""
    if not path.is_file():
        raise ConfigError(f"{path}: settings file not found")
    token = _settings_file.set(path)
    try:
        return Settings(**(overrides or {}))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation_error(exc)}") from None
    except SettingsError as exc:  # an environment variable holding a list or table that isn't JSON
        raise ConfigError(f"{path}: {exc} (a list or table in the environment is JSON)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    finally:
        _settings_file.reset(token)


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """The first error of ``exc`` as ``dotted.key: message`` (and how many more)."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    key = ".".join(str(part) for part in (prefix, *first["loc"]) if part != "")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    variable = environment_variable(key)
    source = f" (from environment variable {variable})" if variable is not None else ""
    return f"{key or '(top level)'}{source}: {first['msg']}{more}"


def environment_variable(key: str) -> str | None:
    """The ``MEDIASRV_*`` variable that set dotted ``key`` (or a table holding it), if one is set."""
    parts = [part for part in key.split(".") if part]
    names = {name.upper(): name for name in os.environ}
    for length in range(len(parts), 0, -1):
        name = ENV_PREFIX + ENV_DELIMITER.join(parts[:length]).upper()
        if name in names:
            return names[name]
    return None
