"""One contract, every cache backend: the in-process cache and a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import free_port
from videoforge.cache import Cache, CacheError, MemoryCache, RedisCache, create_cache
from videoforge.config import Config, build_config


def _config(tmp_path: Path, **cache: object) -> Config:
    return build_config({"server": {"data_dir": str(tmp_path)}, "cache": cache})


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cache]:
    """Each backend in turn; Redis is the session's real server, emptied for this test."""
    url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    backend = create_cache(_config(tmp_path, url=url))
    try:
        yield backend
    finally:
        await backend.close()


async def test_cache_get_after_set_returns_value(cache: Cache) -> None:
    await cache.set("k", b"\x00value")
    assert await cache.get("k") == b"\x00value"


async def test_cache_get_missing_key_returns_none(cache: Cache) -> None:
    assert await cache.get("nope") is None


async def test_cache_set_existing_key_overwrites(cache: Cache) -> None:
    await cache.set("k", b"one")
    await cache.set("k", b"two")
    assert await cache.get("k") == b"two"


async def test_cache_entry_after_ttl_is_gone(cache: Cache) -> None:
    await cache.set("short", b"v", ttl=0.2)
    await cache.set("long", b"v", ttl=60)
    await asyncio.sleep(0.4)
    assert await cache.get("short") is None
    assert await cache.get("long") == b"v"


async def test_cache_delete_removes_keys_and_ignores_missing(cache: Cache) -> None:
    await cache.set("a", b"1")
    await cache.set("b", b"2")
    await cache.set("c", b"3")
    await cache.delete("a", "b", "missing")
    await cache.delete()
    assert await cache.get_many(["a", "b", "c"]) == [None, None, b"3"]


async def test_cache_get_many_returns_values_in_order(cache: Cache) -> None:
    await cache.set("x", b"1")
    await cache.set("z", b"3")
    assert await cache.get_many(["z", "y", "x"]) == [b"3", None, b"1"]
    assert await cache.get_many([]) == []


async def test_cache_incr_new_key_starts_at_one_and_reads_back(cache: Cache) -> None:
    assert await cache.incr("gen") == 1
    assert await cache.incr("gen") == 2
    assert await cache.get("gen") == b"2"


async def test_cache_incr_concurrent_calls_count_every_one(cache: Cache) -> None:
    results = await asyncio.gather(*(cache.incr("counter") for _ in range(200)))
    assert sorted(results) == list(range(1, 201))
    assert await cache.get("counter") == b"200"


async def test_cache_incr_keeps_existing_ttl(cache: Cache) -> None:
    await cache.set("gen", b"5", ttl=0.2)
    assert await cache.incr("gen") == 6
    await asyncio.sleep(0.4)
    assert await cache.get("gen") is None


async def test_cache_incr_with_ttl_expires_the_new_counter(cache: Cache) -> None:
    assert await cache.incr("window", ttl=0.2) == 1
    assert await cache.incr("window", ttl=60) == 2  # the first expiry stands
    await asyncio.sleep(0.4)
    assert await cache.get("window") is None
    assert await cache.incr("window", ttl=60) == 1


async def test_cache_incr_concurrent_calls_with_ttl_count_every_one(cache: Cache) -> None:
    results = await asyncio.gather(*(cache.incr("window", ttl=60) for _ in range(100)))
    assert sorted(results) == list(range(1, 101))


async def test_cache_set_non_positive_ttl_is_rejected(cache: Cache) -> None:
    with pytest.raises(ValueError):
        await cache.set("k", b"v", ttl=0)


async def test_cache_ping_when_up_returns(cache: Cache) -> None:
    await cache.ping()


async def test_redis_cache_keys_are_prefixed_so_redis_can_be_shared(
    redis_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, url=redis_url)
    caches = [RedisCache(config, prefix="a:"), RedisCache(config, prefix="b:"), RedisCache(config)]
    try:
        await caches[0].set("k", b"from-a")
        assert await caches[1].get("k") is None
        assert await caches[2].get("k") is None  # the default prefix, `vf:`
    finally:
        for cache in caches:
            await cache.close()


async def test_redis_cache_ping_when_server_down_raises_cache_error(tmp_path: Path) -> None:
    cache = create_cache(_config(tmp_path, url=f"redis://127.0.0.1:{free_port()}/0"))
    try:
        with pytest.raises(CacheError):
            await cache.ping()
        with pytest.raises(CacheError):
            await cache.get("k")
    finally:
        await cache.close()


async def test_memory_cache_over_max_entries_evicts_least_recently_used(tmp_path: Path) -> None:
    cache = MemoryCache(_config(tmp_path, max_entries=3))
    for key in ("a", "b", "c"):
        await cache.set(key, key.encode())
    await cache.get("a")  # now "b" is the least recently used
    await cache.set("d", b"d")
    assert await cache.get_many(["a", "b", "c", "d"]) == [b"a", None, b"c", b"d"]


async def test_create_cache_without_url_is_memory_and_with_url_is_redis(tmp_path: Path) -> None:
    memory = create_cache(_config(tmp_path))
    redis = create_cache(_config(tmp_path, url="redis://127.0.0.1:1/0"))
    assert isinstance(memory, MemoryCache)
    assert isinstance(redis, RedisCache)
    await redis.close()
