"""PostgreSQL backend: rows in `queue_messages`, claimed with FOR UPDATE SKIP LOCKED.

This module is the only one that queries `queue_messages`. Every delivery gets a fresh receipt
token, so a worker whose visibility lapsed (and whose message went to someone else) can no longer
extend, ack, release or dead-letter it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from videoforge.config import QueueConfig
from videoforge.db.listener import Wakeups
from videoforge.errors import ServiceUnavailable
from videoforge.queue.base import (
    JobQueue,
    Message,
    QueueStats,
    check_receive_args,
    check_release_delay,
    check_send_args,
    check_visibility,
    decode_body,
    encode_body,
)

log = logging.getLogger(__name__)

CHANNEL = "videoforge_queue"  # the payload is the queue name

DEFAULT_NAME = "jobs"
CHECK_TIMEOUT = 2.0

# The NOTIFY is part of the statement, so it fires when (and only if) the message commits.
SEND = """
WITH sent AS (
    INSERT INTO queue_messages (queue, body, visible_at)
    VALUES ($1, $2, now() + make_interval(secs => $3::float8))
    RETURNING 1
)
SELECT pg_notify($4, $1) FROM sent WHERE $3::float8 = 0
"""

# One round trip: dead-letter what has been received max_attempts times and is visible again
# (SQS's maxReceiveCount), then claim the rest that is visible, in the order it was first sent: a
# message back from a dead worker or a hand-back keeps its place ahead of newer ones. The two sets
# never overlap. Rows with a NULL receipt_token in the result are the dead-lettered ones.
#
# Each set is chosen, locked and limited ONCE, in a MATERIALIZED CTE, before any row is updated.
# Joined straight to the UPDATE, a `SELECT ... LIMIT n FOR UPDATE SKIP LOCKED` may be rescanned by
# the plan (the inner side of a nested loop, say), and every rescan skips the rows this statement
# has just updated and hands out n more: one receive of 1 then claims several messages. A
# materialized CTE is computed once and its rescans read the stored rows, whatever the plan.
CLAIM = """
WITH due_for_dead_letter AS MATERIALIZED (
    SELECT id FROM queue_messages
    WHERE queue = $1 AND dead_lettered_at IS NULL AND visible_at <= now()
      AND receive_count >= $3
    FOR UPDATE SKIP LOCKED
), exhausted AS (
    UPDATE queue_messages AS m
    SET dead_lettered_at = now(), receipt_token = NULL
    FROM due_for_dead_letter AS due
    WHERE m.id = due.id
    RETURNING m.id, m.body, m.receive_count, NULL::uuid AS receipt_token
), next AS MATERIALIZED (
    SELECT id FROM queue_messages
    WHERE queue = $1 AND dead_lettered_at IS NULL AND visible_at <= now()
      AND receive_count < $3
    ORDER BY id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE queue_messages AS m
    SET visible_at = now() + make_interval(secs => $4::float8),
        receive_count = m.receive_count + 1,
        receipt_token = gen_random_uuid()
    FROM next
    WHERE m.id = next.id
    RETURNING m.id, m.body, m.receive_count, m.receipt_token
)
SELECT * FROM claimed UNION ALL SELECT * FROM exhausted
"""

EXTEND = """
UPDATE queue_messages SET visible_at = now() + make_interval(secs => $3::float8)
WHERE id = $1 AND receipt_token = $2 AND dead_lettered_at IS NULL
"""

ACK = "DELETE FROM queue_messages WHERE id = $1 AND receipt_token = $2"

# A hand-back un-counts its delivery. The receipt is spent with it, so a second release of the
# same delivery gives back nothing more.
RELEASE = """
WITH released AS (
    UPDATE queue_messages
    SET visible_at = now() + make_interval(secs => $3::float8),
        receive_count = greatest(receive_count - 1, 0),
        receipt_token = NULL
    WHERE id = $1 AND receipt_token = $2 AND dead_lettered_at IS NULL
    RETURNING queue
)
SELECT pg_notify($4, queue) FROM released WHERE $3::float8 = 0
"""

DEAD_LETTER = """
UPDATE queue_messages SET dead_lettered_at = now(), receipt_token = NULL
WHERE id = $1 AND receipt_token = $2 AND dead_lettered_at IS NULL
"""

# Live rows come from the partial claim index; "oldest" is how long the longest-waiting visible
# message has waited since it became receivable (its send, or its last return to the queue).
# In flight means held by a receiver: a delayed send or hand-back is neither (as on SQS).
STATS = """
SELECT
    count(*) FILTER (WHERE visible_at <= now()) AS visible,
    count(*) FILTER (WHERE visible_at > now() AND receipt_token IS NOT NULL) AS in_flight,
    coalesce(greatest(extract(epoch FROM now() - min(visible_at)), 0), 0)::float8 AS oldest,
    (SELECT count(*) FROM queue_messages
     WHERE queue = $1 AND dead_lettered_at IS NOT NULL) AS dead_lettered
FROM queue_messages
WHERE queue = $1 AND dead_lettered_at IS NULL
"""

Connection = asyncpg.Connection | PoolConnectionProxy

_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class PostgresQueue(JobQueue):
    """The default backend: the queue lives in the application's own database."""

    def __init__(self, config: QueueConfig, pool: asyncpg.Pool, name: str = DEFAULT_NAME) -> None:
        self.config = config
        self.name = name
        self._pool = pool
        self._wakeups = Wakeups(pool, CHANNEL)

    async def open(self) -> None:
        await self._wakeups.ensure()

    async def close(self) -> None:
        await self._wakeups.close()

    async def send(self, job_id: int, delay_seconds: int = 0, *, chunk: int | None = None) -> None:
        async with self._pool.acquire() as conn:
            await self.send_in(conn, job_id, delay_seconds, chunk=chunk)

    async def send_in(
        self, conn: Connection, job_id: int, delay_seconds: int = 0, *, chunk: int | None = None
    ) -> None:
        """Send on `conn`, in its open transaction if any: the message commits with the job."""
        check_send_args(job_id, delay_seconds, chunk)
        body = encode_body(job_id, chunk)
        with _errors("send"):
            await conn.execute(SEND, self.name, body, delay_seconds, CHANNEL)

    async def receive(self, max_messages: int = 1, wait_seconds: float = 0.0) -> list[Message]:
        check_receive_args(max_messages, wait_seconds)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while True:
            woken = self._wakeups.current(self.name)
            messages = await self._claim(max_messages)
            remaining = deadline - loop.time()
            if messages or remaining <= 0:
                return messages
            await self._wakeups.ensure()
            fired = await self._wakeups.wait(woken, min(remaining, self.config.poll_interval))
            # Only a wake-up or a poll tick looks again: when the wait runs out, it is over.
            if not fired and loop.time() >= deadline:
                return []

    async def extend(self, message: Message, seconds: int) -> None:
        check_visibility(seconds)
        with _errors("extend"):
            await self._pool.execute(EXTEND, *_parse_receipt(message.receipt), seconds)

    async def ack(self, message: Message) -> None:
        with _errors("ack"):
            await self._pool.execute(ACK, *_parse_receipt(message.receipt))

    async def release(self, message: Message, delay_seconds: float = 0) -> None:
        check_release_delay(delay_seconds)
        receipt = _parse_receipt(message.receipt)
        with _errors("release"):
            await self._pool.execute(RELEASE, *receipt, delay_seconds, CHANNEL)

    async def dead_letter(self, message: Message) -> None:
        with _errors("dead-letter"):
            status = await self._pool.execute(DEAD_LETTER, *_parse_receipt(message.receipt))
        if status == "UPDATE 1":  # else the receipt was stale: someone else holds the message
            log.warning("queue: message for job %d dead-lettered", message.job_id)

    async def stats(self) -> QueueStats:
        with _errors("stats"):
            row = await self._pool.fetchrow(STATS, self.name)
        assert row is not None  # an aggregate always returns a row
        return QueueStats(
            visible=row["visible"],
            in_flight=row["in_flight"],
            oldest_age_seconds=row["oldest"],
            dead_lettered=row["dead_lettered"],
        )

    async def check(self) -> None:
        await check_postgres_queue(self._pool)

    async def _claim(self, max_messages: int) -> list[Message]:
        with _errors("receive"):
            rows = await self._pool.fetch(
                CLAIM,
                self.name,
                max_messages,
                self.config.max_attempts,
                self.config.visibility_timeout,
            )
        messages = []
        for row in rows:
            message = await self._accept(row)
            if message is not None:
                messages.append(message)
        return messages

    async def _accept(self, row: asyncpg.Record) -> Message | None:
        """A deliverable message, or None for one dead-lettered now (exhausted or malformed)."""
        if row["receipt_token"] is None:
            log.warning(
                "queue: message %d dead-lettered after %d receives", row["id"], row["receive_count"]
            )
            return None
        receipt = f"{row['id']}:{row['receipt_token']}"
        task = decode_body(row["body"])
        if task is None:
            log.warning("queue: message %d has a malformed body; dead-lettered", row["id"])
            with _errors("dead-letter"):
                await self._pool.execute(DEAD_LETTER, *_parse_receipt(receipt))
            return None
        job_id, chunk = task
        return Message(job_id, receipt, row["receive_count"], chunk)


async def check_postgres_queue(pool: asyncpg.Pool, timeout: float = CHECK_TIMEOUT) -> None:
    """Raise `ServiceUnavailable` unless the queue table answers within `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            await pool.execute("SELECT 1 FROM queue_messages LIMIT 0")
    except TimeoutError:
        raise ServiceUnavailable(f"postgres queue did not answer within {timeout:g} s") from None
    except _DB_ERRORS as exc:
        raise ServiceUnavailable(f"postgres queue is not usable: {exc}") from exc


def _parse_receipt(receipt: str) -> tuple[int, uuid.UUID]:
    """`"<message id>:<delivery token>"` as made by `_accept`."""
    message_id, _, token = receipt.partition(":")
    try:
        return int(message_id), uuid.UUID(token)
    except ValueError:
        raise ValueError(f"not a postgres queue receipt: {receipt!r}") from None


@contextlib.contextmanager
def _errors(action: str) -> Iterator[None]:
    """Database failures as `ServiceUnavailable`, the same as every other backend's."""
    try:
        yield
    except _DB_ERRORS as exc:
        raise ServiceUnavailable(f"postgres queue {action} failed: {exc}") from exc
