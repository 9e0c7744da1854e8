"""One contract, run unchanged against both queue backends (PostgreSQL, and SQS through moto).

Backend-specific behaviour (stale receipts and LISTEN on postgres, missing queues on SQS) is at
the end, on the same fixtures narrowed to one backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiobotocore.session import get_session
from aiohttp import web

from videoforge import keys
from videoforge.config import build_config
from videoforge.errors import ServiceUnavailable
from videoforge.queue import JobQueue, Message, PostgresQueue, check_queue, create_queue, queue_ctx
from videoforge.queue.postgres import CHANNEL

# Short visibility and polling keep the timeout tests to a second or two each.
FAST = {"visibility_timeout": 1, "max_attempts": 3, "poll_interval": 0.2}
LONG_ENOUGH = 5.0  # a long-poll wait no correct test ever sits through
LISTENER_PIDS = (
    "SELECT pid FROM pg_stat_activity "
    f"WHERE datname = current_database() AND state = 'idle' AND query = 'LISTEN \"{CHANNEL}\"'"
)

QueueFactory = Callable[..., Awaitable[JobQueue]]
RawWriter = Callable[[str], Awaitable[None]]


@pytest.fixture(params=["postgres", "sqs"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def queue_settings(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The `[queue]` section; on SQS, queues of this test's own, created on open."""
    if backend == "postgres":
        return {"backend": "postgres", **FAST}
    endpoint = request.getfixturevalue("sqs_credentials")
    name = f"jobs-{secrets.token_hex(6)}"
    return {
        "backend": "sqs",
        **FAST,
        "sqs_queue": name,
        "sqs_dead_letter_queue": f"{name}-dlq",
        "sqs_endpoint_url": endpoint,
        "sqs_create_queues": True,
    }


@pytest.fixture
def pool(backend: str, request: pytest.FixtureRequest) -> asyncpg.Pool | None:
    """This test's database pool for postgres; SQS needs none."""
    if backend != "postgres":
        return None
    db_pool: asyncpg.Pool = request.getfixturevalue("db_pool")
    return db_pool


@pytest.fixture
async def make_queue(
    queue_settings: dict[str, Any], pool: asyncpg.Pool | None
) -> AsyncIterator[QueueFactory]:
    """Open queue objects on the same queue (settings may be overridden); all closed at the end."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: Any) -> JobQueue:
            config = build_config({"queue": {**queue_settings, **overrides}})
            return await stack.enter_async_context(create_queue(config, pool))

        yield make


@pytest.fixture
async def queue(make_queue: QueueFactory) -> JobQueue:
    return await make_queue()


@pytest.fixture
def write_raw(queue_settings: dict[str, Any], pool: asyncpg.Pool | None) -> RawWriter:
    """Put a message body on the queue behind our back, as another program might."""

    async def write(body: str) -> None:
        if pool is not None:
            await pool.execute("INSERT INTO queue_messages (queue, body) VALUES ('jobs', $1)", body)
            return
        async with get_session().create_client(
            "sqs", endpoint_url=queue_settings["sqs_endpoint_url"], region_name="us-east-1"
        ) as sqs:
            url = (await sqs.get_queue_url(QueueName=queue_settings["sqs_queue"]))["QueueUrl"]
            await sqs.send_message(QueueUrl=url, MessageBody=body)

    return write


async def receive_one(queue: JobQueue, wait_seconds: float = 0.0) -> Message:
    messages = await queue.receive(wait_seconds=wait_seconds)
    assert len(messages) == 1, messages
    return messages[0]


async def counts(queue: JobQueue) -> tuple[int, int, int]:
    stats = await queue.stats()
    return stats.visible, stats.in_flight, stats.dead_lettered


# The contract, on both backends.


async def test_sent_job_id_is_received_once_with_receive_count_1(queue: JobQueue) -> None:
    await queue.send(42)

    message = await receive_one(queue)

    assert (message.job_id, message.receive_count) == (42, 1)
    assert message.receipt


async def test_receive_on_empty_queue_waits_then_returns_nothing(queue: JobQueue) -> None:
    assert await queue.receive(max_messages=10, wait_seconds=0.5) == []


async def test_received_message_is_invisible_to_a_second_receive(
    make_queue: QueueFactory,
) -> None:
    first, second = await make_queue(), await make_queue()
    await first.send(1)

    await receive_one(first)

    assert await second.receive(wait_seconds=0.3) == []


async def test_unacked_message_after_visibility_timeout_comes_back_with_count_2(
    queue: JobQueue,
) -> None:
    await queue.send(7)
    await receive_one(queue)

    again = await receive_one(queue, wait_seconds=LONG_ENOUGH)

    assert (again.job_id, again.receive_count) == (7, 2)


async def test_extended_message_stays_invisible_past_the_original_timeout(
    queue: JobQueue,
) -> None:
    await queue.send(7)
    message = await receive_one(queue)

    await queue.extend(message, 4)
    await asyncio.sleep(1.5)  # past the 1 s visibility the message was received with

    assert await queue.receive() == []
    assert await counts(queue) == (0, 1, 0)


async def test_acked_message_never_comes_back(queue: JobQueue) -> None:
    await queue.send(7)
    await queue.ack(await receive_one(queue))

    # Longer than the visibility timeout: an unacked message would be back by then.
    assert await queue.receive(wait_seconds=1.5) == []
    assert await counts(queue) == (0, 0, 0)


async def test_released_message_is_receivable_at_once_as_if_never_received(
    queue: JobQueue,
) -> None:
    await queue.send(7)
    await queue.release(await receive_one(queue))

    again = await receive_one(queue)

    # The hand-back was not a failed delivery: it is not counted.
    assert (again.job_id, again.receive_count) == (7, 1)


async def test_message_released_more_than_max_attempts_times_is_still_delivered(
    make_queue: QueueFactory,
) -> None:
    queue = await make_queue(max_attempts=2)
    await queue.send(7)
    for _ in range(4):
        await queue.release(await receive_one(queue, wait_seconds=LONG_ENOUGH))

    again = await receive_one(queue, wait_seconds=LONG_ENOUGH)

    assert again.job_id == 7
    assert await counts(queue) == (0, 1, 0)


async def test_released_message_with_a_delay_comes_back_only_after_it(queue: JobQueue) -> None:
    await queue.send(7)
    await queue.release(await receive_one(queue), delay_seconds=2)

    assert await queue.receive(wait_seconds=0.5) == []
    again = await receive_one(queue, wait_seconds=LONG_ENOUGH)
    assert (again.job_id, again.receive_count) == (7, 1)


async def test_message_received_max_attempts_times_is_dead_lettered(
    make_queue: QueueFactory,
) -> None:
    queue = await make_queue(max_attempts=2)
    await queue.send(7)
    await receive_one(queue)
    assert (await receive_one(queue, wait_seconds=LONG_ENOUGH)).receive_count == 2

    # Visible again after the second timeout, it goes to the dead-letter queue instead.
    while await counts(queue) != (0, 0, 1):  # bounded by the test timeout
        assert await queue.receive(wait_seconds=0.5) == []


async def test_dead_letter_moves_the_message_at_once(queue: JobQueue) -> None:
    await queue.send(7)
    await queue.dead_letter(await receive_one(queue))

    assert await counts(queue) == (0, 0, 1)
    assert await queue.receive() == []


async def test_malformed_message_is_dead_lettered_and_skipped(
    queue: JobQueue, write_raw: RawWriter
) -> None:
    await write_raw("this is not json")
    await write_raw('{"jobId": "7"}')
    await queue.send(8)

    received = await queue.receive(max_messages=10, wait_seconds=LONG_ENOUGH)

    assert [m.job_id for m in received] == [8]
    assert await counts(queue) == (0, 1, 2)


async def test_concurrent_receivers_never_get_the_same_message(
    make_queue: QueueFactory,
) -> None:
    # A long visibility: a slow consumer must not see a timed-out message come back here.
    queues = [await make_queue(visibility_timeout=60) for _ in range(2)]
    for job_id in range(1, 21):
        await queues[0].send(job_id)

    async def consume(queue: JobQueue) -> list[int]:
        taken: list[int] = []
        while messages := await queue.receive(max_messages=3, wait_seconds=0.3):
            assert len(messages) <= 3
            taken += [m.job_id for m in messages]
            await asyncio.gather(*(queue.ack(m) for m in messages))
        return taken

    results = await asyncio.gather(*(consume(q) for q in queues for _ in range(3)))

    assert sorted(job_id for taken in results for job_id in taken) == list(range(1, 21))


async def test_stats_count_visible_and_in_flight_messages(queue: JobQueue) -> None:
    for job_id in (1, 2, 3):
        await queue.send(job_id)
    await receive_one(queue)

    stats = await queue.stats()

    assert (stats.visible, stats.in_flight, stats.dead_lettered) == (2, 1, 0)
    assert stats.oldest_age_seconds >= 0


async def test_delayed_message_is_received_only_after_its_delay(queue: JobQueue) -> None:
    await queue.send(7, delay_seconds=1)

    assert await queue.receive() == []
    assert (await receive_one(queue, wait_seconds=LONG_ENOUGH)).job_id == 7


async def test_long_poll_wakes_up_when_a_message_is_sent_meanwhile(
    make_queue: QueueFactory,
) -> None:
    # Polling alone would not look again before the wait ends: only the wake-up delivers.
    receiver = await make_queue(poll_interval=60)
    sender = await make_queue()
    waiting = asyncio.create_task(receiver.receive(wait_seconds=LONG_ENOUGH))
    await asyncio.sleep(0.3)  # let the receiver start waiting

    await sender.send(7)

    assert [m.job_id for m in await waiting] == [7]


async def test_receive_with_more_than_ten_messages_is_refused(queue: JobQueue) -> None:
    with pytest.raises(ValueError, match="max_messages"):
        await queue.receive(max_messages=11)


async def test_check_on_an_open_queue_passes(queue: JobQueue) -> None:
    await queue.check()


async def test_queue_ctx_sets_the_app_key_and_a_health_check(
    queue_settings: dict[str, Any], pool: asyncpg.Pool | None
) -> None:
    app = web.Application()
    app[keys.CONFIG] = build_config({"queue": queue_settings})
    if pool is not None:
        app[keys.DB] = pool
    app.cleanup_ctx.append(queue_ctx)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await app[keys.QUEUE].send(7)
        await app[keys.HEALTH_CHECKS]["queue"]()
        assert (await receive_one(app[keys.QUEUE])).job_id == 7
    finally:
        await runner.cleanup()


# PostgreSQL only.

postgres_only = pytest.mark.parametrize("backend", ["postgres"], indirect=True)
sqs_only = pytest.mark.parametrize("backend", ["sqs"], indirect=True)


@postgres_only
async def test_stale_receipt_cannot_touch_the_new_delivery(queue: JobQueue) -> None:
    await queue.send(7)
    stale = await receive_one(queue)
    current = await receive_one(queue, wait_seconds=LONG_ENOUGH)  # after the timeout

    await queue.ack(stale)
    await queue.release(stale)
    await queue.extend(stale, 0)
    await queue.dead_letter(stale)

    assert await queue.receive() == []
    assert await counts(queue) == (0, 1, 0)
    await queue.ack(current)
    assert await counts(queue) == (0, 0, 0)


@postgres_only
async def test_second_release_of_one_delivery_gives_back_nothing_more(queue: JobQueue) -> None:
    await queue.send(7)
    await receive_one(queue)
    timed_out = await receive_one(queue, wait_seconds=LONG_ENOUGH)  # the first one counts

    await queue.release(timed_out)
    await queue.release(timed_out)

    assert (await receive_one(queue)).receive_count == 2


@postgres_only
async def test_message_back_after_its_timeout_is_claimed_before_messages_sent_after_it(
    queue: JobQueue,
) -> None:
    await queue.send(1)
    await receive_one(queue)  # its worker dies: it comes back after the 1 s visibility
    await queue.send(2)
    await asyncio.sleep(1.2)
    await queue.send(3)

    assert [m.job_id for m in await queue.receive(max_messages=10)] == [1, 2, 3]


@postgres_only
async def test_released_message_is_claimed_before_messages_sent_after_it(queue: JobQueue) -> None:
    await queue.send(1)
    first = await receive_one(queue)
    await queue.send(2)

    await queue.release(first)

    assert (await receive_one(queue)).job_id == 1


@postgres_only
async def test_delayed_release_keeps_its_place_only_once_visible(queue: JobQueue) -> None:
    await queue.send(1)
    first = await receive_one(queue)
    await queue.send(2)

    await queue.release(first, delay_seconds=1)

    assert [m.job_id for m in await queue.receive(max_messages=10)] == [2]
    assert (await receive_one(queue, wait_seconds=LONG_ENOUGH)).job_id == 1


@postgres_only
async def test_send_in_a_transaction_is_delivered_only_if_it_commits(
    queue: JobQueue, db_pool: asyncpg.Pool
) -> None:
    assert isinstance(queue, PostgresQueue)
    async with db_pool.acquire() as conn:
        rolled_back = conn.transaction()
        await rolled_back.start()
        await queue.send_in(conn, 1)
        await rolled_back.rollback()
        async with conn.transaction():
            await queue.send_in(conn, 2)

    messages = await queue.receive(max_messages=10, wait_seconds=0.3)

    assert [m.job_id for m in messages] == [2]


@postgres_only
async def test_lost_listener_connection_is_replaced_and_wakes_receivers_again(
    make_queue: QueueFactory, db_pool: asyncpg.Pool
) -> None:
    queue = await make_queue(poll_interval=60)
    (lost,) = await listener_pids(db_pool)
    await db_pool.execute("SELECT pg_terminate_backend($1)", lost)
    waiting = asyncio.create_task(queue.receive(wait_seconds=LONG_ENOUGH * 2))

    await wait_for_listener_other_than(db_pool, lost)
    await queue.send(7)

    assert [m.job_id for m in await waiting] == [7]


async def listener_pids(db_pool: asyncpg.Pool) -> list[int]:
    return [row["pid"] for row in await db_pool.fetch(LISTENER_PIDS)]


async def wait_for_listener_other_than(db_pool: asyncpg.Pool, lost: int) -> None:
    for _ in range(200):
        if set(await listener_pids(db_pool)) - {lost}:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no new LISTEN connection within 10 s")


async def test_check_queue_for_postgres_without_a_database_fails_in_words() -> None:
    config = build_config({"queue": {"backend": "postgres"}})

    with pytest.raises(ServiceUnavailable, match="database"):
        await check_queue(config.queue, None)


# SQS only.


@sqs_only
async def test_sqs_queue_that_does_not_exist_fails_to_open_in_words(
    make_queue: QueueFactory,
) -> None:
    with pytest.raises(ServiceUnavailable, match="no-such-queue"):
        await make_queue(sqs_create_queues=False, sqs_queue="no-such-queue")


@sqs_only
async def test_sqs_check_after_the_queue_is_deleted_fails_in_words(
    queue: JobQueue, queue_settings: dict[str, Any]
) -> None:
    async with get_session().create_client(
        "sqs", endpoint_url=queue_settings["sqs_endpoint_url"], region_name="us-east-1"
    ) as sqs:
        url = (await sqs.get_queue_url(QueueName=queue_settings["sqs_queue"]))["QueueUrl"]
        await sqs.delete_queue(QueueUrl=url)

    with pytest.raises(ServiceUnavailable, match=queue_settings["sqs_queue"]):
        await queue.check()


@sqs_only
async def test_check_queue_for_sqs_does_not_create_missing_queues(
    queue_settings: dict[str, Any],
) -> None:
    config = build_config({"queue": {**queue_settings, "sqs_queue": "never-created"}})

    with pytest.raises(ServiceUnavailable, match="never-created"):
        await check_queue(config.queue, None)
