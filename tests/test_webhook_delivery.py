"""Webhook events and their delivery: the outbox written with each change (and only with a
committed one), signatures a Standard Webhooks library verifies, retries that keep the
`webhook-id`, 410 and long failure runs that disable an endpoint, the address rules applied at
every delivery, and what a receiver's answer may cost us.

The delivery loop runs on the test's own migrated database against a real receiver
(`tests.webhook_support`); events come from the real triggers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from tests.webhook_support import Receiver, StartReceiver
from tests.worker_support import poll_until_async
from videoforge.config import WebhooksConfig
from videoforge.db import jobs as jobs_db
from videoforge.db import videos as videos_db
from videoforge.db import webhooks as webhooks_db
from videoforge.db.webhooks import Endpoint
from videoforge.ops.metrics import Metrics
from videoforge.webhooks.delivery import RESPONSE_CAP, Deliverer
from videoforge.webhooks.events import EVENT_TYPES
from videoforge.webhooks.signing import new_secret

ALICE, BOB = "alice", "bob"
LOCAL = {"allow_http": True, "allow_private_networks": True}
FAST_RETRIES = {**LOCAL, "retry_delays": "0.2,0.2,0.2", "timeout": 2.0}

MakeDeliverer = Callable[..., Deliverer]


@pytest.fixture
async def make_deliverer(db_pool: asyncpg.Pool) -> AsyncIterator[MakeDeliverer]:
    """A delivery loop on the test's database, running until the test ends."""
    running: list[tuple[Deliverer, asyncio.Task[None]]] = []

    def make(**settings: Any) -> Deliverer:
        deliverer = Deliverer(db_pool, WebhooksConfig(**{**FAST_RETRIES, **settings}), Metrics())
        running.append((deliverer, asyncio.create_task(deliverer.run())))
        return deliverer

    yield make
    for deliverer, task in running:
        await deliverer.stop(task)


async def register(
    pool: asyncpg.Pool, receiver: Receiver, user: str = ALICE, url: str | None = None
) -> Endpoint:
    """An endpoint straight in the database (the API's own checks are tested elsewhere)."""
    secret = new_secret()
    receiver.secrets.append(secret)
    return await webhooks_db.create_endpoint(
        pool, user, url or receiver.url, list(EVENT_TYPES), "", secret
    )


async def new_video(pool: asyncpg.Pool, user: str = ALICE, key: str = "a.mp4") -> int:
    video = await videos_db.insert_video(
        pool,
        user_id=user,
        title="clip",
        description="",
        s3_key=f"uploads/{user}/{key}",
        visibility="public",
        content_type="video/mp4",
        file_size=1000,
    )
    return video.id


async def delivery_of(pool: asyncpg.Pool, delivery_id: int) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM webhook_deliveries WHERE id = $1", delivery_id)
    assert row is not None
    return row


async def wait_for_delivery(
    pool: asyncpg.Pool, delivery_id: int, status: str | None = None, timeout: float = 20.0
) -> asyncpg.Record:
    """The delivery once it is in `status` (None: once an attempt has failed)."""

    async def reached() -> asyncpg.Record | None:
        row = await delivery_of(pool, delivery_id)
        done = row["last_error"] is not None if status is None else row["status"] == status
        return row if done else None

    return await poll_until_async(reached, timeout, lambda: f"delivery {delivery_id}: {status}")


async def test_events_are_written_with_the_change_and_never_for_a_rolled_back_one(
    db_pool: asyncpg.Pool, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver()
    endpoint = await register(db_pool, receiver)
    video_id = await new_video(db_pool)
    job = await jobs_db.insert_job(
        db_pool, user_id=ALICE, input_source="k", qualities=["low"], gallery_video_id=video_id
    )
    async with db_pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("UPDATE jobs SET status = 'DOWNLOADING' WHERE id = $1", job.id)
        inside = await conn.fetchval("SELECT count(*) FROM webhook_events")
        await transaction.rollback()
    assert inside == 2  # video.uploaded, and job.started inside the transaction
    types = await db_pool.fetch("SELECT type FROM webhook_events ORDER BY id")
    assert [row["type"] for row in types] == ["video.uploaded"]

    await db_pool.execute("UPDATE jobs SET status = 'DOWNLOADING' WHERE id = $1", job.id)
    await db_pool.execute("UPDATE jobs SET status = 'COMPLETED' WHERE id = $1", job.id)
    await db_pool.execute("UPDATE gallery_videos SET status = 'ready' WHERE id = $1", video_id)
    await db_pool.execute("DELETE FROM gallery_videos WHERE id = $1", video_id)
    rows = await db_pool.fetch(
        "SELECT e.type, d.endpoint_id FROM webhook_events e"
        " JOIN webhook_deliveries d ON d.event_id = e.id ORDER BY e.id"
    )
    assert [row["type"] for row in rows] == [
        "video.uploaded",
        "job.started",
        "job.completed",
        "video.playable",
        "video.ready",
        "video.deleted",
    ]
    assert {row["endpoint_id"] for row in rows} == {endpoint.id}


async def test_only_the_owners_subscribed_endpoints_get_an_event(
    db_pool: asyncpg.Pool, start_receiver: StartReceiver, make_deliverer: MakeDeliverer
) -> None:
    alices, bobs = await start_receiver(), await start_receiver()
    await register(db_pool, alices)
    await register(db_pool, bobs, user=BOB)
    picky = await start_receiver()
    secret = new_secret()
    picky.secrets.append(secret)
    await webhooks_db.create_endpoint(db_pool, ALICE, picky.url, ["video.deleted"], "", secret)
    make_deliverer()

    video_id = await new_video(db_pool)
    await alices.wait_for(lambda got: len(got) == 1)
    await db_pool.execute("DELETE FROM gallery_videos WHERE id = $1", video_id)
    await alices.wait_for(lambda got: len(got) == 2)
    await picky.wait_for(lambda got: len(got) == 1)

    assert [r.payload["type"] for r in alices.received] == ["video.uploaded", "video.deleted"]
    assert [r.payload["type"] for r in picky.received] == ["video.deleted"]
    assert bobs.received == []
    # Another user's video with nobody listening writes no event at all.
    await new_video(db_pool, user="carol", key="c.mp4")
    events = await db_pool.fetchval("SELECT count(*) FROM webhook_events WHERE user_id = 'carol'")
    assert events == 0


async def test_every_delivery_verifies_with_the_standard_webhooks_library(
    db_pool: asyncpg.Pool, start_receiver: StartReceiver, make_deliverer: MakeDeliverer
) -> None:
    receiver = await start_receiver()
    await register(db_pool, receiver)
    make_deliverer()
    video_id = await new_video(db_pool)

    [got] = await receiver.wait_for(lambda got: len(got) == 1)
    assert got.verified is not None, got.headers
    assert got.verified == got.payload
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"].startswith("videoforge-webhooks/")
    assert got.webhook_id.startswith("msg_")
    assert got.payload["type"] == "video.uploaded"
    assert got.payload["timestamp"].endswith("Z")
    data = got.payload["data"]
    assert data["id"] == video_id and data["status"] == "uploaded" and data["userId"] == ALICE
    assert "thumbnailUrl" not in data  # signed URLs expire: never in an event


async def test_a_receiver_failing_twice_gets_the_same_webhook_id_three_times(
    db_pool: asyncpg.Pool, start_receiver: StartReceiver, make_deliverer: MakeDeliverer
) -> None:
    receiver = await start_receiver(answers=[500, 500])
    endpoint = await register(db_pool, receiver)
    make_deliverer()
    delivery_id = await webhooks_db.record_test_event(db_pool, endpoint, {"hello": "world"})

    row = await wait_for_delivery(db_pool, delivery_id, "DELIVERED")
    assert [r.answered for r in receiver.received] == [500, 500, 204]
    assert len({r.webhook_id for r in receiver.received}) == 1
    assert len({r.body for r in receiver.received}) == 1  # the same bytes, signed anew each time
    assert all(r.verified == {"type": "webhook.test", **r.payload} for r in receiver.received)
    assert row["attempts"] == 3 and row["last_status_code"] == 204
    failing = await db_pool.fetchval(
        "SELECT failing_since FROM webhook_endpoints WHERE id = $1", endpoint.id
    )
    assert failing is None  # a success ends the failure run


async def test_retries_run_out_and_the_delivery_fails_with_its_last_answer(
    db_pool: asyncpg.Pool, start_receiver: StartReceiver, make_deliverer: MakeDeliverer
) -> None:
    receiver = await start_receiver(default=503, body=b"x" * (RESPONSE_CAP * 4))
    endpoint = await register(db_pool, receiver)
    deliverer = make_deliverer(retry_delays="0.1,0.1")
    delivery_id = await webhooks_db.record_test_event(db_pool, endpoint, {})

    row = await wait_for_delivery(db_pool, delivery_id, "FAILED")
    assert row["attempts"] == 3 and len(receiver.received) == 3
    assert row["last_status_code"] == 503 and row["last_error"] == "answered 503"
    assert row["last_response"] == "x" * RESPONSE_CAP  # kept short
    assert row["next_attempt_at"] is None
    counted = deliverer.metrics.webhook_deliveries
    assert counted.labels("retrying")._value.get() == 2
    assert counted.labels("failed")._value.get() == 1


async def test_gone_disables_the_endpoint_at_once(
    db_pool: asyncpg.Pool, start_receiver: StartReceiver, make_deliverer: MakeDeliverer
) -> None:
    receiver = await start_receiver(default=410)
    endpoint = await register(db_pool, receiver)
    make_deliverer()
    first = await webhooks_db.record_test_event(db_pool, endpoint, {})
    await wait_for_delivery(db_pool, first, "FAILED")
    changed = await webhooks_db.get_endpoint(db_pool, endpoint.id)
    assert changed is not None and not changed.enabled
    assert changed.disabled_reason == "answered 410 Gone"

    # A disabled endpoint gets no new events, and its queued deliveries wait.
    await new_video(db_pool)
    await asyncio.sleep(0.5)
    assert len(receiver.received) == 1
    assert await db_pool.fetchval("SELECT count(*) FROM webhook_events") == 1


async def test_an_endpoint_failing_for_days_is_disabled(
    db_pool: asyncpg.Pool, start_receiver: StartReceiver, make_deliverer: MakeDeliverer
) -> None:
    receiver = await start_receiver(default=500)
    endpoint = await register(db_pool, receiver)
    await db_pool.execute(
        "UPDATE webhook_endpoints SET failing_since = now() - interval '6 days' WHERE id = $1",
        endpoint.id,
    )
    make_deliverer(disable_after_days=5)
    delivery_id = await webhooks_db.record_test_event(db_pool, endpoint, {})

    async def disabled() -> Endpoint | None:
        changed = await webhooks_db.get_endpoint(db_pool, endpoint.id)
        return changed if changed is not None and not changed.enabled else None

    changed = await poll_until_async(disabled, 10, lambda: "the endpoint stayed enabled")
    assert changed.disabled_reason == "every delivery failed for 5 days"
    assert (await delivery_of(db_pool, delivery_id))["status"] == "PENDING"  # waits, unsent


async def test_redirects_are_not_followed(
    db_pool: asyncpg.Pool, start_receiver: StartReceiver, make_deliverer: MakeDeliverer
) -> None:
    target = await start_receiver()
    redirecting = await start_receiver(default=307)
    endpoint = await register(db_pool, redirecting)
    make_deliverer(retry_delays="")
    delivery_id = await webhooks_db.record_test_event(db_pool, endpoint, {})

    row = await wait_for_delivery(db_pool, delivery_id, "FAILED")
    assert row["last_status_code"] == 307 and row["last_error"] == "answered 307"
    assert target.received == []


async def test_a_slow_receiver_times_out_and_is_retried(
    db_pool: asyncpg.Pool, start_receiver: StartReceiver, make_deliverer: MakeDeliverer
) -> None:
    receiver = await start_receiver(delay=3.0)
    endpoint = await register(db_pool, receiver)
    make_deliverer(timeout=0.5, retry_delays="30")
    delivery_id = await webhooks_db.record_test_event(db_pool, endpoint, {})

    row = await wait_for_delivery(db_pool, delivery_id)
    assert row["status"] == "PENDING" and row["attempts"] == 1
    assert row["last_error"] == "no answer within 0.5 s"


async def test_an_unreachable_receiver_is_retried(
    db_pool: asyncpg.Pool, start_receiver: StartReceiver, make_deliverer: MakeDeliverer
) -> None:
    receiver = await start_receiver()
    endpoint = await register(db_pool, receiver, url="http://127.0.0.1:9/hooks")  # discard port
    make_deliverer(retry_delays="30")
    delivery_id = await webhooks_db.record_test_event(db_pool, endpoint, {})

    row = await wait_for_delivery(db_pool, delivery_id)
    assert row["status"] == "PENDING" and row["last_status_code"] is None
    assert row["last_error"].startswith("cannot connect"), row["last_error"]


@pytest.mark.parametrize(
    ("host", "reason"),
    [("localhost", "loopback"), ("127.0.0.1", "loopback"), ("169.254.169.254", "metadata")],
)
async def test_addresses_are_checked_again_at_every_delivery(
    db_pool: asyncpg.Pool,
    start_receiver: StartReceiver,
    make_deliverer: MakeDeliverer,
    host: str,
    reason: str,
) -> None:
    """An endpoint registered while its name resolved elsewhere (or under laxer rules) is
    refused when it is posted to: the receiver never hears of it."""
    receiver = await start_receiver()
    url = f"http://{host}:{receiver.port}/hooks"
    endpoint = await register(db_pool, receiver, url=url)
    deliverer = make_deliverer(allow_private_networks=False, retry_delays="")
    delivery_id = await webhooks_db.record_test_event(db_pool, endpoint, {})

    row = await wait_for_delivery(db_pool, delivery_id, "FAILED")
    assert row["last_error"].startswith("url:") and reason in row["last_error"], row
    assert receiver.received == []
    assert deliverer.metrics.webhook_deliveries.labels("refused")._value.get() == 1


async def test_after_a_rotation_both_secrets_sign_for_a_day(
    db_pool: asyncpg.Pool, start_receiver: StartReceiver, make_deliverer: MakeDeliverer
) -> None:
    receiver = await start_receiver()
    endpoint = await register(db_pool, receiver)
    old = receiver.secrets.pop()
    rotated = await webhooks_db.rotate_secret(db_pool, endpoint.id, new_secret(), 86400)
    assert rotated is not None
    make_deliverer()
    await webhooks_db.record_test_event(db_pool, rotated, {})

    [got] = await receiver.wait_for(lambda got: len(got) == 1)
    signatures = got.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    for secret in (old, rotated.secret):
        receiver.secrets[:] = [secret]
        assert receiver._verify(got.body, got.headers) is not None, secret

    # Once the old one expired, only the new one signs.
    await db_pool.execute(
        "UPDATE webhook_endpoints SET previous_secret_until = now() WHERE id = $1", endpoint.id
    )
    await webhooks_db.record_test_event(db_pool, rotated, {})
    await receiver.wait_for(lambda got: len(got) == 2)
    assert len(receiver.received[1].headers["webhook-signature"].split(" ")) == 1


async def test_an_endpoints_deliveries_go_in_event_order(
    db_pool: asyncpg.Pool, start_receiver: StartReceiver, make_deliverer: MakeDeliverer
) -> None:
    receiver = await start_receiver()
    endpoint = await register(db_pool, receiver)
    ids = [await webhooks_db.record_test_event(db_pool, endpoint, {"n": n}) for n in range(40)]
    make_deliverer()

    await wait_for_delivery(db_pool, ids[-1], "DELIVERED")
    assert [r.payload["data"]["n"] for r in receiver.received] == list(range(40))
    backlog = await webhooks_db.backlog(db_pool)
    assert backlog.pending == 0 and backlog.oldest_seconds == 0


async def test_two_delivery_loops_share_the_work_without_doubling_it(
    db_pool: asyncpg.Pool, start_receiver: StartReceiver, make_deliverer: MakeDeliverer
) -> None:
    receivers = [await start_receiver() for _ in range(4)]
    endpoints = [await register(db_pool, receiver) for receiver in receivers]
    for n in range(25):
        for endpoint in endpoints:
            await webhooks_db.record_test_event(db_pool, endpoint, {"n": n})
    make_deliverer()
    make_deliverer()

    for receiver in receivers:
        await receiver.wait_for(lambda got: len(got) >= 25)
    await asyncio.sleep(0.3)
    for receiver in receivers:
        assert len(receiver.received) == 25
        assert len({r.webhook_id for r in receiver.received}) == 25
