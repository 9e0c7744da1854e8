"""Configuration: `config.toml` plus `VIDEOFORGE_<SECTION>_<KEY>` overrides, as frozen dataclasses.

Everything is validated here, before a port opens: an unknown key or a bad value raises
`ConfigError` with a message that names the key.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from videoforge.support.paging import MAX_LIMIT

ENV_PREFIX = "VIDEOFORGE_"
MIN_MULTIPART_THRESHOLD = 5 * 1024**2  # S3's smallest part but the last: storage.multipart
# The HLS segment length (videoforge.transcode.command.HLS_SEGMENT_S, which cannot be imported
# here: the transcode package reads this module): every chunk seam must fall on a segment bound.
CHUNK_ALIGNMENT_S = 4
# Environment variables of ours that are not `<SECTION>_<KEY>` settings: the config file's path,
# and the API client's server and token (the client reads no config).
ENV_NOT_SETTINGS = frozenset({"VIDEOFORGE_CONFIG", "VIDEOFORGE_SERVER", "VIDEOFORGE_TOKEN"})


class ConfigError(ValueError):
    """A configuration file or value that cannot be used."""


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("./var")
    public_url: str = ""
    max_body_bytes: int = 1024 * 1024
    secret_key: str = ""
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def __post_init__(self) -> None:
        _check(0 <= self.port <= 65535, "server.port", "must be between 0 and 65535")
        _check(self.max_body_bytes > 0, "server.max_body_bytes", "must be positive")
        _check(
            not self.public_url or self.public_url.startswith(("http://", "https://")),
            "server.public_url",
            "must start with http:// or https://",
        )

    @property
    def base_url(self) -> str:
        """The URL clients use to reach this server (for signed local-storage URLs)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = ""
    pool_min_size: int = 1
    pool_max_size: int = 10

    def __post_init__(self) -> None:
        _check(
            not self.url or self.url.startswith(("postgres://", "postgresql://")),
            "database.url",
            "must be a postgresql:// URL (or empty for the embedded server)",
        )
        _check(self.pool_min_size >= 0, "database.pool_min_size", "must not be negative")
        _check(
            self.pool_max_size >= max(1, self.pool_min_size),
            "database.pool_max_size",
            "must be at least 1 and at least pool_min_size",
        )


@dataclass(frozen=True)
class StorageConfig:
    backend: Literal["local", "s3"] = "local"
    max_upload_bytes: int = 20 * 1024**3  # one PUT is capped lower: storage.base.MAX_PUT_BYTES
    multipart_threshold: int = 64 * 1024**2  # the upload page sends larger files in parts
    presign_ttl: int = 3600
    bucket: str = "videoforge"
    endpoint_url: str = ""
    public_endpoint_url: str = ""
    region: str = "us-east-1"
    create_bucket: bool = False

    def __post_init__(self) -> None:
        _check(self.max_upload_bytes > 0, "storage.max_upload_bytes", "must be positive")
        # Every part but the last is at least 5 MiB (S3's minimum): a smaller file is one PUT.
        _check(
            self.multipart_threshold >= MIN_MULTIPART_THRESHOLD,
            "storage.multipart_threshold",
            "must be at least 5242880 (5 MiB)",
        )
        _check(
            0 < self.presign_ttl <= 7 * 24 * 3600,
            "storage.presign_ttl",
            "must be between 1 and 604800 seconds",
        )
        _check(bool(self.bucket) or self.backend != "s3", "storage.bucket", "is required for s3")


@dataclass(frozen=True)
class QueueConfig:
    backend: Literal["postgres", "sqs"] = "postgres"
    visibility_timeout: int = 120
    max_attempts: int = 3
    poll_interval: float = 1.0
    sqs_queue: str = "videoforge-jobs"
    sqs_dead_letter_queue: str = "videoforge-jobs-dlq"
    sqs_endpoint_url: str = ""
    sqs_region: str = "us-east-1"
    sqs_create_queues: bool = False

    def __post_init__(self) -> None:
        _check(
            1 <= self.visibility_timeout <= 43200,
            "queue.visibility_timeout",
            "must be between 1 and 43200 seconds",
        )
        _check(1 <= self.max_attempts <= 100, "queue.max_attempts", "must be between 1 and 100")
        _check(self.poll_interval > 0, "queue.poll_interval", "must be positive")


@dataclass(frozen=True)
class CacheConfig:
    url: str = ""
    ttl: float = 30.0
    max_entries: int = 10_000

    def __post_init__(self) -> None:
        _check(
            not self.url or self.url.startswith(("redis://", "rediss://", "unix://")),
            "cache.url",
            "must be a redis://, rediss:// or unix:// URL (or empty for the in-process cache)",
        )
        _check(self.ttl > 0, "cache.ttl", "must be positive")
        _check(self.max_entries > 0, "cache.max_entries", "must be positive")


@dataclass(frozen=True)
class AuthConfig:
    mode: Literal["local", "jwks"] = "local"
    secret_file: str = ""
    token_ttl: int = 7 * 24 * 3600
    allow_registration: bool = True
    jwks_url: str = ""
    issuer: str = ""
    audience: str = ""
    admin_group: str = "admin"
    jwks_cache_ttl: int = 3600

    def __post_init__(self) -> None:
        _check(self.token_ttl > 0, "auth.token_ttl", "must be positive")
        _check(bool(self.admin_group), "auth.admin_group", "must not be empty")
        if self.mode == "jwks":
            _check(bool(self.jwks_url), "auth.jwks_url", "is required when auth.mode is jwks")
            _check(bool(self.issuer), "auth.issuer", "is required when auth.mode is jwks")


@dataclass(frozen=True)
class TranscodeConfig:
    workers: int = 1
    ffmpeg: str = ""
    ffprobe: str = ""
    temp_dir: str = ""
    max_duration_s: int = 4 * 3600
    max_pixels: int = 4096 * 2160
    timeout_factor: float = 10.0
    shutdown_grace: float = 30.0
    chunk_seconds: int = 60

    def __post_init__(self) -> None:
        _check(self.shutdown_grace >= 0, "transcode.shutdown_grace", "must not be negative")
        _check(
            self.chunk_seconds >= 0 and self.chunk_seconds % CHUNK_ALIGNMENT_S == 0,
            "transcode.chunk_seconds",
            f"must be 0 (off) or a positive whole multiple of {CHUNK_ALIGNMENT_S}"
            " (the HLS segment length)",
        )
        _check(0 <= self.workers <= 64, "transcode.workers", "must be between 0 and 64")
        _check(self.max_duration_s > 0, "transcode.max_duration_s", "must be positive")
        _check(self.max_pixels > 0, "transcode.max_pixels", "must be positive")
        _check(self.timeout_factor > 0, "transcode.timeout_factor", "must be positive")


@dataclass(frozen=True)
class LimitsConfig:
    """Per-user limits that keep one account from starving the others (0 turns one off)."""

    max_active_jobs: int = 5
    jobs_per_minute: int = 20
    upload_urls_per_minute: int = 60

    def __post_init__(self) -> None:
        for name in ("max_active_jobs", "jobs_per_minute", "upload_urls_per_minute"):
            _check(getattr(self, name) >= 0, f"limits.{name}", "must not be negative")


@dataclass(frozen=True)
class PagesConfig:
    """How many items one page of the site lists: at most what one page of the API holds."""

    gallery_page_size: int = 24
    library_page_size: int = 20
    admin_jobs_page_size: int = 20

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            size = getattr(self, f.name)
            _check(1 <= size <= MAX_LIMIT, f"pages.{f.name}", f"must be between 1 and {MAX_LIMIT}")


@dataclass(frozen=True)
class WebhooksConfig:
    """Deliveries of events to the URLs users register (`POST /api/webhooks`)."""

    timeout: float = 10.0
    # Seconds to wait before each retry (jittered); once they are used up the delivery has failed.
    retry_delays: str = "5,300,1800,7200,18000,36000,36000"
    disable_after_days: float = 5.0
    allow_http: bool = False
    # Lifts the loopback and private-address refusal (receivers on a LAN, tests); link-local and
    # cloud metadata addresses stay refused.
    allow_private_networks: bool = False

    def __post_init__(self) -> None:
        _check(self.timeout > 0, "webhooks.timeout", "must be positive")
        _check(self.disable_after_days > 0, "webhooks.disable_after_days", "must be positive")
        try:
            delays = self.delays
        except ValueError:
            delays = (-1.0,)
        _check(
            all(0 <= d <= 7 * 86400 for d in delays),
            "webhooks.retry_delays",
            "must be a comma-separated list of seconds, each between 0 and 604800",
        )

    @property
    def delays(self) -> tuple[float, ...]:
        """`retry_delays` as numbers (empty: no retry)."""
        return tuple(float(part) for part in self.retry_delays.split(",") if part.strip())


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    transcode: TranscodeConfig = field(default_factory=TranscodeConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    pages: PagesConfig = field(default_factory=PagesConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir


SECTIONS: dict[str, type[Any]] = {
    f.name: typing.get_type_hints(Config)[f.name] for f in dataclasses.fields(Config)
}


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Read the file (if any), apply environment then explicit overrides, and validate it all."""
    env = os.environ if env is None else env
    raw = _read_file(_find_file(path, env))
    _merge(raw, _from_env(env))
    _merge(raw, {s: dict(v) for s, v in (overrides or {}).items()})
    return build_config(raw)


def build_config(raw: Mapping[str, Mapping[str, Any]]) -> Config:
    """Turn `{section: {key: value}}` into a validated `Config`."""
    sections: dict[str, Any] = {}
    for name, values in raw.items():
        if name not in SECTIONS:
            raise ConfigError(f"{name}: unknown section (known: {', '.join(SECTIONS)})")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{name}: must be a table of keys")
        sections[name] = _build_section(name, SECTIONS[name], values)
    return Config(**sections)


def _find_file(path: str | Path | None, env: Mapping[str, str]) -> Path | None:
    if path:
        return Path(path)
    if env.get("VIDEOFORGE_CONFIG"):
        return Path(env["VIDEOFORGE_CONFIG"])
    default = Path("config.toml")
    return default if default.is_file() else None


def _read_file(path: Path | None) -> dict[str, dict[str, Any]]:
    if path is None:
        return {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for name, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{name}: expected a [{name}] section, not a bare key")
    return data


def _from_env(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Collect `VIDEOFORGE_<SECTION>_<KEY>`; any other `VIDEOFORGE_*` variable is a mistake
    (`VIDEOFORGE_DATABSE_URL` must not quietly start the embedded database instead)."""
    found: dict[str, dict[str, Any]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_SETTINGS:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        if section not in SECTIONS or not key:
            raise ConfigError(
                f"{name}: not a setting: expected VIDEOFORGE_<SECTION>_<KEY> with a section"
                f" among {', '.join(s.upper() for s in SECTIONS)}"
            )
        found.setdefault(section, {})[key] = value
    return found


def _merge(into: dict[str, dict[str, Any]], extra: Mapping[str, Mapping[str, Any]]) -> None:
    for section, values in extra.items():
        into.setdefault(section, {}).update(values)


def _build_section(section: str, cls: type[Any], values: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"{section}.{key}: unknown key (known: {', '.join(hints)})")
        kwargs[key] = _coerce(f"{section}.{key}", hints[key], value)
    return cls(**kwargs)


def _coerce(key: str, hint: Any, value: Any) -> Any:
    """Convert a TOML or environment value to the field's type, or say why not."""
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        _check(value in choices, key, f"must be one of {', '.join(map(repr, choices))}")
        return value
    if hint is bool:
        return _to_bool(key, value)
    if hint in (int, float):
        return _to_number(key, hint, value)
    if hint is Path:
        _check(isinstance(value, str) and bool(value), key, "must be a non-empty path")
        return Path(value)
    if hint is str:
        _check(isinstance(value, str), key, "must be a string")
        _check("\x00" not in value, key, "must not contain NUL")
        return value
    raise ConfigError(f"{key}: unsupported type {hint!r}")  # pragma: no cover


def _to_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{key}: must be true or false, not {value!r}")


def _to_number(key: str, hint: type[int] | type[float], value: Any) -> int | float:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: must be a number, not {value!r}")
    if isinstance(value, str):
        try:
            return hint(value.strip().replace("_", ""))
        except ValueError:
            raise ConfigError(f"{key}: must be {_article(hint)}, not {value!r}") from None
    if hint is float and isinstance(value, int | float):
        return float(value)
    if hint is int and isinstance(value, int):
        return value
    raise ConfigError(f"{key}: must be {_article(hint)}, not {value!r}")


def _article(hint: type[Any]) -> str:
    return "an integer" if hint is int else "a number"


def with_overrides(config: Config, **sections: Mapping[str, Any]) -> Config:
    """A copy of `config` with some keys replaced (validated like the file)."""
    raw = {
        name: {k: _plain(v) for k, v in dataclasses.asdict(getattr(config, name)).items()}
        for name in SECTIONS
    }
    _merge(raw, sections)
    return build_config(raw)


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


__all__ = [
    "AuthConfig",
    "CacheConfig",
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "LimitsConfig",
    "PagesConfig",
    "QueueConfig",
    "ServerConfig",
    "StorageConfig",
    "TranscodeConfig",
    "build_config",
    "load_config",
    "with_overrides",
]
