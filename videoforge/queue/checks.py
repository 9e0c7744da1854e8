"""Is the configured queue reachable? Used by `videoforge doctor`, which must not create queues."""

from __future__ import annotations

import dataclasses

import asyncpg

from videoforge.config import QueueConfig
from videoforge.errors import ServiceUnavailable
from videoforge.queue.postgres import check_postgres_queue
from videoforge.queue.sqs import SqsQueue


async def check_queue(config: QueueConfig, pool: asyncpg.Pool | None) -> None:
    """Raise ServiceUnavailable, in words, when the queue cannot be used."""
    if config.backend == "postgres":
        if pool is None:
            raise ServiceUnavailable("the postgres queue needs the database, which is down")
        await check_postgres_queue(pool)
        return
    # Opening resolves both queue URLs, which is the check; creating them is the app's job.
    async with SqsQueue(dataclasses.replace(config, sqs_create_queues=False)) as queue:
        await queue.check()
