"""The in-process cache: one process's own TTL cache, bounded, least recently used evicted first."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

from videoforge.cache.base import Cache, positive_ttl, ttl_or_default
from videoforge.config import Config


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
        expires = time.monotonic() + ttl_or_default(ttl, self._default_ttl)
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
            expires = None if ttl is None else time.monotonic() + positive_ttl(ttl)
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
