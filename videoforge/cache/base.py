"""The cache interface (bytes values, per-entry expiry, atomic counters) that every backend keeps.

Invalidation is generation based: callers `incr` a counter and put its value in their keys, so
old entries are simply never read again and expire on their own.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from videoforge.errors import ServiceUnavailable


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


def ttl_or_default(ttl: float | None, default: float) -> float:
    return positive_ttl(default if ttl is None else ttl)


def positive_ttl(ttl: float) -> float:
    if ttl <= 0:
        raise ValueError(f"cache ttl must be positive, not {ttl}")
    return ttl
