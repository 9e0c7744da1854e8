"""One cache interface (bytes values): Redis via `redis.asyncio`, or an in-process TTL cache.

Invalidation is generation based: callers `incr` a counter and put its value in their keys, so
old entries are simply never read again and expire on their own.
"""

from __future__ import annotations

import abc
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from typing import cast

import redis.asyncio as redis_asyncio
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError

from videoforge import keys
from videoforge.config import Config
from videoforge.errors import ServiceUnavailable
from videoforge.health import register_check

KEY_PREFIX = "vf:"
MAX_CONNECTIONS = 50
TIMEOUT_S = 2.0


class CacheError(ServiceUnavailable):
    """Cache unavailable"""


class Cache(abc.ABC):
    """A key-value cache of bytes with per-entry expiry and atomic counters."""

    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value, or None if missing or expired."""

    @abc.abstractmethod
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of `keys`, in order, None where missing."""

    @abc.abstractmethod
    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store `value` for `ttl` seconds (default `cache.ttl`)."""

    @abc.abstractmethod
    async def delete(self, *keys: str) -> None:
        """Remove the keys (missing ones are ignored)."""

    @abc.abstractmethod
    async def incr(self, key: str, ttl: float | None = None) -> int:
        """Atomically add one to a counter and return the new value. A counter is created at 0,
        expiring after `ttl` seconds if given (never otherwise); an existing expiry is kept."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Return if the cache is reachable, raise `CacheError` otherwise."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""


def _ttl_or_default(ttl: float | None, default: float) -> float:
    return _positive_ttl(default if ttl is None else ttl)


def _positive_ttl(ttl: float) -> float:
    if ttl <= 0:
        raise ValueError(f"cache ttl must be positive, not {ttl}")
    return ttl


class MemoryCache(Cache):
    """In-process TTL cache, bounded at `cache.max_entries` with least-recently-used eviction."""

    def __init__(self, config: Config) -> None:
        self._default_ttl = config.cache.ttl
        self._max_entries = config.cache.max_entries
        # key -> (value, monotonic expiry or None); order is least to most recently used.
        self._entries: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        """The value, or None if missing or expired."""
        return self._get(key)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of `keys`, in order, None where missing."""
        return [self._get(key) for key in keys]

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store `value` for `ttl` seconds (default `cache.ttl`)."""
        expires = time.monotonic() + _ttl_or_default(ttl, self._default_ttl)
        self._put(key, bytes(value), expires)

    async def delete(self, *keys: str) -> None:
        """Remove the keys (missing ones are ignored)."""
        for key in keys:
            self._entries.pop(key, None)

    async def incr(self, key: str, ttl: float | None = None) -> int:
        """Add one to a counter; like Redis INCR, an existing expiry is kept."""
        value = self._get(key)  # drops an expired entry
        if value is not None:
            expires = self._entries[key][1]
        else:
            expires = None if ttl is None else time.monotonic() + _positive_ttl(ttl)
        try:
            count = int(value or b"0") + 1
        except ValueError:
            raise ValueError(f"cache value at {key!r} is not an integer") from None
        self._put(key, str(count).encode(), expires)
        return count

    async def ping(self) -> None:
        """Always reachable."""

    async def close(self) -> None:
        """Drop every entry."""
        self._entries.clear()

    def _get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def _put(self, key: str, value: bytes, expires: float | None) -> None:
        self._entries[key] = (value, expires)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


class RedisCache(Cache):
    """Redis-backed cache; every key carries a prefix so it can share a Redis."""

    def __init__(self, config: Config, *, prefix: str = KEY_PREFIX) -> None:
        self._default_ttl = config.cache.ttl
        self._prefix = prefix
        # A bounded pool that makes a burst wait for a connection (the default pool raises past
        # its limit), short timeouts and one quick retry (for a pooled connection gone stale):
        # a cache that is down must fail fast instead of stalling every request for seconds.
        pool = redis_asyncio.BlockingConnectionPool.from_url(
            config.cache.url,
            max_connections=MAX_CONNECTIONS,
            timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            socket_timeout=TIMEOUT_S,
            retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), retries=1),
        )
        self._redis = redis_asyncio.Redis.from_pool(pool)

    async def get(self, key: str) -> bytes | None:
        """The value, or None if missing or expired."""
        with _unavailable_on_error():
            value = await self._redis.get(self._prefix + key)
        return cast("bytes | None", value)  # bytes, since decode_responses is off

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of `keys`, in order (one MGET)."""
        if not keys:
            return []
        with _unavailable_on_error():
            values = await self._redis.mget([self._prefix + k for k in keys])
        return cast("list[bytes | None]", values)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store `value` for `ttl` seconds (default `cache.ttl`), with millisecond precision."""
        px = max(1, round(_ttl_or_default(ttl, self._default_ttl) * 1000))
        with _unavailable_on_error():
            await self._redis.set(self._prefix + key, value, px=px)

    async def delete(self, *keys: str) -> None:
        """Remove the keys (missing ones are ignored)."""
        if not keys:
            return
        with _unavailable_on_error():
            await self._redis.delete(*(self._prefix + k for k in keys))

    async def incr(self, key: str, ttl: float | None = None) -> int:
        """Atomically add one to a counter (Redis INCR; with a ttl, SET NX PX first so the
        expiry is set only by the request that creates the counter)."""
        name = self._prefix + key
        with _unavailable_on_error():
            if ttl is None:
                count: int = await self._redis.incr(name)
                return count
            px = max(1, round(_positive_ttl(ttl) * 1000))
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(name, 0, px=px, nx=True)
                pipe.incr(name)
                _, count = await pipe.execute()
        return count

    async def ping(self) -> None:
        """Return if Redis answers PING, raise `CacheError` otherwise."""
        with _unavailable_on_error():
            await self._redis.ping()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


@contextmanager
def _unavailable_on_error() -> Iterator[None]:
    """Turn Redis failures into `CacheError` (503) so callers never see a backend's errors."""
    try:
        yield
    except RedisError as exc:
        # The message reaches clients: keep Redis's own (hosts, ports) in the chained cause only.
        raise CacheError() from exc


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
