"""Job queue: one interface, a PostgreSQL table (default) or SQS.

Build it with `create_queue(config, pool)` (an async context manager), or let `queue_ctx` do it
for the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from videoforge import keys
from videoforge.config import Config
from videoforge.ops.health import register_check
from videoforge.queue.base import JobQueue, Message, QueueStats
from videoforge.queue.checks import check_queue
from videoforge.queue.postgres import PostgresQueue
from videoforge.queue.sqs import SqsQueue


def create_queue(config: Config, pool: asyncpg.Pool | None) -> JobQueue:
    """The configured backend, not yet opened: use `async with` (or `open`/`close`)."""
    if config.queue.backend == "sqs":
        return SqsQueue(config.queue)
    if pool is None:
        raise ValueError("the postgres queue needs the database pool")
    return PostgresQueue(config.queue, pool)


async def queue_ctx(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup_ctx: open the configured queue as `app[keys.QUEUE]`, close at exit."""
    config = app[keys.CONFIG]
    pool = app[keys.DB] if config.queue.backend == "postgres" else None
    async with create_queue(config, pool) as queue:
        app[keys.QUEUE] = queue
        register_check(app, "queue", queue.check)
        yield


__all__ = [
    "JobQueue",
    "Message",
    "PostgresQueue",
    "QueueStats",
    "SqsQueue",
    "check_queue",
    "create_queue",
    "queue_ctx",
]
