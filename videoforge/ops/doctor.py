"""`videoforge doctor`: check every component the configuration names, and say what is wrong."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg

from videoforge.cache import create_cache
from videoforge.config import Config
from videoforge.db import check_database, open_database
from videoforge.errors import VideoforgeError
from videoforge.queue.checks import check_queue
from videoforge.storage import create_storage
from videoforge.transcode.binaries import binary_version, locate

CHECK_TIMEOUT = 30.0


class Report:
    """Prints one line per component and remembers whether any failed."""

    def __init__(self) -> None:
        self.failed = False

    async def run(self, name: str, check: Callable[[], Awaitable[str | None]]) -> None:
        try:
            detail = await asyncio.wait_for(check(), CHECK_TIMEOUT)
        except Exception as exc:
            self.fail(name, exc)
        else:
            self.line("ok", name, detail or "")

    def fail(self, name: str, exc: BaseException) -> None:
        self.failed = True
        self.line("FAIL", name, _describe(exc))

    @staticmethod
    def line(verdict: str, name: str, detail: str) -> None:
        print(f"{verdict:<6}{name:<10}{detail}", flush=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, VideoforgeError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT:g} s"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def run_doctor(config: Config) -> int:
    """Exit status 0 when everything works, 1 when something does not."""
    report = Report()
    await report.run("ffmpeg", lambda: _check_binary("ffmpeg", config.transcode.ffmpeg))
    await report.run("ffprobe", lambda: _check_binary("ffprobe", config.transcode.ffprobe))
    await _check_database_and_queue(config, report)
    await report.run("storage", lambda: _check_storage(config))
    await report.run("cache", lambda: _check_cache(config))
    return 1 if report.failed else 0


async def _check_binary(name: str, configured: str) -> str:
    path = locate(name, configured)
    return f"{await binary_version(path)} ({path})"


async def _check_database_and_queue(config: Config, report: Report) -> None:
    # The postgres queue lives in the database, so it is checked while the pool is open.
    try:
        async with open_database(config) as pool:
            await report.run("database", lambda: _describe_database(config, pool))
            await report.run("queue", lambda: _check_queue(config, pool))
    except Exception as exc:
        report.fail("database", exc)
        await report.run("queue", lambda: _check_queue(config, None))


async def _describe_database(config: Config, pool: asyncpg.Pool) -> str:
    await check_database(pool)
    version = await pool.fetchval("SHOW server_version")
    where = "configured" if config.database.url else "embedded"
    return f"PostgreSQL {version} ({where})"


async def _check_queue(config: Config, pool: asyncpg.Pool | None) -> str:
    await check_queue(config.queue, pool)
    return f"{config.queue.backend} queue reachable"


async def _check_storage(config: Config) -> str:
    async with create_storage(config) as storage:
        await storage.check()
    where = config.storage.bucket if config.storage.backend == "s3" else "data_dir/storage"
    return f"{config.storage.backend} ({where})"


async def _check_cache(config: Config) -> str:
    cache = create_cache(config)
    try:
        await cache.ping()
    finally:
        await cache.close()
    return "redis" if config.cache.url else "in-process"
