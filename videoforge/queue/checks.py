"""Is the configured queue reachable? Used by `videoforge doctor` and health checks."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from videoforge.config import QueueConfig
from videoforge.errors import ServiceUnavailable


async def check_queue(config: QueueConfig, pool: asyncpg.Pool | None) -> None:
    """Raise ServiceUnavailable, in words, when the queue cannot be used."""
    if config.backend == "postgres":
        if pool is None:
            raise ServiceUnavailable("the postgres queue needs the database, which is down")
        await pool.execute("SELECT 1 FROM queue_messages LIMIT 0")
        return
    await _check_sqs(config)


async def _check_sqs(config: QueueConfig) -> None:
    session = get_session()
    endpoint = config.sqs_endpoint_url or None
    async with session.create_client(
        "sqs", region_name=config.sqs_region, endpoint_url=endpoint
    ) as sqs:
        for name in (config.sqs_queue, config.sqs_dead_letter_queue):
            try:
                await resolve_queue_url(sqs, name)
            except (ClientError, BotoCoreError) as exc:
                raise ServiceUnavailable(f"SQS queue {name!r} is not usable: {exc}") from exc


async def resolve_queue_url(sqs: Any, name_or_url: str) -> str:
    """A queue URL from either its URL (checked) or its name (looked up)."""
    if name_or_url.startswith(("http://", "https://")):
        await sqs.get_queue_attributes(QueueUrl=name_or_url, AttributeNames=["QueueArn"])
        return name_or_url
    response = await sqs.get_queue_url(QueueName=name_or_url)
    return str(response["QueueUrl"])
