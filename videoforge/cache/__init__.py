"""One cache interface, two backends: Redis when `cache.url` is set, else an in-process cache."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from videoforge import keys
from videoforge.cache.base import Cache, CacheError
from videoforge.cache.memory import MemoryCache
from videoforge.cache.redis import KEY_PREFIX, RedisCache
from videoforge.config import Config
from videoforge.ops.health import register_check


def create_cache(config: Config) -> Cache:
    """Redis when `cache.url` is set, else the in-process cache."""
    if config.cache.url:
        return RedisCache(config)
    return MemoryCache(config)


async def cache_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: set `app[keys.CACHE]`, close it on shutdown."""
    cache = create_cache(app[keys.CONFIG])
    app[keys.CACHE] = cache
    register_check(app, "cache", cache.ping)
    try:
        yield
    finally:
        await cache.close()


__all__ = [
    "KEY_PREFIX",
    "Cache",
    "CacheError",
    "MemoryCache",
    "RedisCache",
    "cache_ctx",
    "create_cache",
]
