"""Object storage: one interface, a local backend (default) and an S3 backend.

Build it with `create_storage(config)` (an async context manager), or let `storage_ctx` do it
for the app (the local backend's signed URLs are served by `videoforge.web.media`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from videoforge import keys
from videoforge.config import Config
from videoforge.ops.health import register_check
from videoforge.storage.base import ObjectChanged, ObjectInfo, ObjectVersion, Storage
from videoforge.storage.local import LocalStorage
from videoforge.storage.validation import content_type_for, validate_key, validate_prefix

if TYPE_CHECKING:
    from videoforge.storage.s3 import S3Storage


def __getattr__(name: str) -> Any:
    # The S3 backend loads botocore (a third of a second): only what uses it pays for it, and
    # what needs only the rules (the CLI's uploads, the transcode's file names) never does.
    if name == "S3Storage":
        from videoforge.storage.s3 import S3Storage

        return S3Storage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def create_storage(config: Config) -> Storage:
    """The configured backend, not yet opened: use `async with` (or `open`/`close`)."""
    if config.storage.backend == "s3":
        from videoforge.storage.s3 import S3Storage

        return S3Storage(config.storage)
    return LocalStorage(config.data_dir, config.server.base_url, config.storage.max_upload_bytes)


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup_ctx: open the configured storage as `app[keys.STORAGE]`, close at exit."""
    async with create_storage(app[keys.CONFIG]) as storage:
        app[keys.STORAGE] = storage
        register_check(app, "storage", storage.check)
        yield


__all__ = [
    "LocalStorage",
    "ObjectChanged",
    "ObjectInfo",
    "ObjectVersion",
    "S3Storage",
    "Storage",
    "content_type_for",
    "create_storage",
    "storage_ctx",
    "validate_key",
    "validate_prefix",
]
