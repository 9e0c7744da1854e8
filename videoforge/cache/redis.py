"""The Redis cache, shared by every process using the same Redis (via `redis.asyncio`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import cast

import redis.asyncio as redis_asyncio
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError

from videoforge.cache.base import Cache, CacheError, positive_ttl, ttl_or_default
from videoforge.config import Config

KEY_PREFIX = "vf:"
MAX_CONNECTIONS = 50
TIMEOUT_S = 2.0


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
        px = max(1, round(ttl_or_default(ttl, self._default_ttl) * 1000))
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
            px = max(1, round(positive_ttl(ttl) * 1000))
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
