"""The application's connection pool: server (embedded or configured), pool, migrations, health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from videoforge import keys
from videoforge.config import Config
from videoforge.db.embedded import embedded_database
from videoforge.db.migrations import migrate
from videoforge.errors import ServiceUnavailable
from videoforge.ops.health import register_check

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 10.0  # seconds to wait for borrowed connections before cutting them off


class _OneLine(logging.Filter):
    """asyncpg logs each failed attempt to restore the pool's minimum size with a traceback:
    while the database is down that is a traceback every few seconds, and the error's own
    words say all of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()}: {record.exc_info[1]!r}"
            record.args = ()
            record.exc_info = record.exc_text = None
        return True


_POOL_LOG_FILTER = _OneLine()


@contextlib.asynccontextmanager
async def open_database(config: Config) -> AsyncIterator[asyncpg.Pool]:
    """Yield a migrated pool; with an empty `database.url`, run the embedded server meanwhile."""
    pool_log = logging.getLogger("asyncpg.pool")
    if _POOL_LOG_FILTER not in pool_log.filters:
        pool_log.addFilter(_POOL_LOG_FILTER)
    async with contextlib.AsyncExitStack() as stack:
        url = config.database.url
        if not url:
            url = await stack.enter_async_context(embedded_database(config.data_dir))
        pool = await asyncpg.create_pool(
            url,
            min_size=config.database.pool_min_size,
            max_size=config.database.pool_max_size,
        )
        stack.push_async_callback(close_pool, pool)
        applied = await migrate(pool)
        if applied:
            log.info("database migrated to version %d", applied[-1])
        yield pool


async def close_pool(pool: asyncpg.Pool, timeout: float = CLOSE_TIMEOUT) -> None:
    """Close gracefully, but never hang shutdown on a connection someone forgot to release."""
    try:
        await asyncio.wait_for(pool.close(), timeout)
    except TimeoutError:
        log.warning("database pool did not close within %.0f s; terminating it", timeout)
        pool.terminate()


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context: `app[keys.DB]` is the pool while the app runs."""
    async with open_database(app[keys.CONFIG]) as pool:
        app[keys.DB] = pool
        register_check(app, "database", lambda: check_database(pool))
        yield


async def check_database(pool: asyncpg.Pool, timeout: float = 2.0) -> None:
    """Raise `ServiceUnavailable` unless the database answers a trivial query within `timeout`."""
    try:
        # The timeout covers waiting for a free connection too, not only the query.
        async with asyncio.timeout(timeout):
            await pool.fetchval("SELECT 1")
    except TimeoutError:
        raise ServiceUnavailable(f"Database did not answer within {timeout:g} s") from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ServiceUnavailable(f"Database unavailable: {exc}") from exc
