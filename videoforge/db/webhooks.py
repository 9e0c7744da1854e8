"""Webhook endpoints, the event outbox and deliveries: the only module with SQL for them.

Events are written by triggers (schema.sql, migration 9) in the transaction of the change they
report; this module reads them, and writes what each delivery attempt did.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from videoforge.db.types import Executor
from videoforge.model import DeliveryStatus


def _sql(status: DeliveryStatus) -> str:
    """A status as an SQL literal (our own constants, never input)."""
    return f"'{status.value}'"


_PENDING, _DELIVERED = _sql(DeliveryStatus.PENDING), _sql(DeliveryStatus.DELIVERED)
_FAILED = _sql(DeliveryStatus.FAILED)

_ENDPOINT_COLUMNS = """
    id, user_id, url, events, description, enabled, disabled_reason, secret, previous_secret,
    previous_secret_until, failing_since, created_at, updated_at
"""

# Only these may be changed by `update_endpoint`: the route's schema decides what a user sends.
UPDATABLE = frozenset({"url", "events", "description", "enabled"})


@dataclass(frozen=True)
class Endpoint:
    id: int
    user_id: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


def _endpoint(row: asyncpg.Record | None) -> Endpoint | None:
    return Endpoint(**dict(row)) if row else None


async def create_endpoint(
    db: Executor, user_id: str, url: str, events: Sequence[str], description: str, secret: str
) -> Endpoint:
    row = await db.fetchrow(
        f"""
        INSERT INTO webhook_endpoints (user_id, url, events, description, secret)
        VALUES ($1, $2, $3, $4, $5) RETURNING {_ENDPOINT_COLUMNS}
        """,
        user_id,
        url,
        list(events),
        description,
        secret,
    )
    endpoint = _endpoint(row)
    assert endpoint is not None
    return endpoint


async def lock_user_endpoints(db: Executor, user_id: str) -> None:
    """Serialise endpoint registration per user until the transaction ends (the cap)."""
    await db.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('videoforge.webhooks:' || $1, 0))", user_id
    )


async def get_endpoint(db: Executor, endpoint_id: int) -> Endpoint | None:
    row = await db.fetchrow(
        f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1", endpoint_id
    )
    return _endpoint(row)


async def list_endpoints(
    db: Executor, user_id: str | None, limit: int, offset: int
) -> tuple[list[Endpoint], int]:
    """A user's endpoints (everybody's when `user_id` is None), oldest first, and their count."""
    rows = await db.fetch(
        f"""
        SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints
        WHERE $1::text IS NULL OR user_id = $1 ORDER BY id LIMIT $2 OFFSET $3
        """,
        user_id,
        limit,
        offset,
    )
    total: int = await db.fetchval(
        "SELECT count(*) FROM webhook_endpoints WHERE $1::text IS NULL OR user_id = $1", user_id
    )
    return [Endpoint(**dict(row)) for row in rows], total


async def update_endpoint(
    db: Executor, endpoint_id: int, changes: Mapping[str, Any]
) -> Endpoint | None:
    """Apply `changes`; enabling an endpoint clears why it was disabled and its failure run."""
    unknown = set(changes) - UPDATABLE
    if unknown or not changes:
        raise ValueError(f"not updatable: {', '.join(sorted(unknown)) or 'nothing'}")
    columns = list(changes)
    assignments = [f"{column} = ${i}" for i, column in enumerate(columns, start=2)]
    if changes.get("enabled") is True:
        assignments += ["disabled_reason = NULL", "failing_since = NULL"]
    row = await db.fetchrow(
        f"""
        UPDATE webhook_endpoints SET {", ".join(assignments)}
        WHERE id = $1 RETURNING {_ENDPOINT_COLUMNS}
        """,
        endpoint_id,
        *(changes[column] for column in columns),
    )
    return _endpoint(row)


async def delete_endpoint(db: Executor, endpoint_id: int) -> bool:
    """Remove an endpoint and its deliveries (events nobody else receives go with `prune`)."""
    result: str = await db.execute("DELETE FROM webhook_endpoints WHERE id = $1", endpoint_id)
    return result != "DELETE 0"


async def rotate_secret(
    db: Executor, endpoint_id: int, secret: str, keep_previous_seconds: float
) -> Endpoint | None:
    """A new secret; the current one keeps signing too for `keep_previous_seconds`."""
    row = await db.fetchrow(
        f"""
        UPDATE webhook_endpoints
        SET previous_secret = secret, secret = $2,
            previous_secret_until = now() + make_interval(secs => $3::float8)
        WHERE id = $1 RETURNING {_ENDPOINT_COLUMNS}
        """,
        endpoint_id,
        secret,
        keep_previous_seconds,
    )
    return _endpoint(row)


async def disable_endpoint(db: Executor, endpoint_id: int, reason: str) -> None:
    await db.execute(
        "UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2 WHERE id = $1",
        endpoint_id,
        reason,
    )


async def record_test_event(db: Executor, endpoint: Endpoint, subject: Mapping[str, Any]) -> int:
    """A `webhook.test` event for this one endpoint, due now; the delivery's id."""
    delivery_id: int = await db.fetchval(
        """
        WITH event AS (
            INSERT INTO webhook_events (type, user_id, subject)
            VALUES ('webhook.test', $2, $3::jsonb) RETURNING id
        )
        INSERT INTO webhook_deliveries (event_id, endpoint_id)
        SELECT event.id, $1 FROM event RETURNING id
        """,
        endpoint.id,
        endpoint.user_id,
        json.dumps(subject),
    )
    return delivery_id


_DELIVERY_COLUMNS = """
    d.id, d.endpoint_id, d.status, d.attempts, d.next_attempt_at, d.last_attempt_at,
    d.last_status_code, d.last_error, d.last_response, d.delivered_at, d.created_at,
    e.type AS event_type, e.message_id
"""


@dataclass(frozen=True)
class Delivery:
    """A delivery as its endpoint's owner sees it."""

    id: int
    endpoint_id: int
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_response: str | None
    delivered_at: datetime | None
    created_at: datetime
    event_type: str
    message_id: str


async def list_deliveries(
    db: Executor, endpoint_id: int, limit: int, offset: int
) -> tuple[list[Delivery], int]:
    """An endpoint's deliveries, newest first, and their count."""
    rows = await db.fetch(
        f"""
        SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d
        JOIN webhook_events e ON e.id = d.event_id
        WHERE d.endpoint_id = $1 ORDER BY d.id DESC LIMIT $2 OFFSET $3
        """,
        endpoint_id,
        limit,
        offset,
    )
    total: int = await db.fetchval(
        "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1", endpoint_id
    )
    return [Delivery(**dict(row)) for row in rows], total


async def get_delivery(db: Executor, endpoint_id: int, delivery_id: int) -> Delivery | None:
    row = await db.fetchrow(
        f"""
        SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d
        JOIN webhook_events e ON e.id = d.event_id
        WHERE d.id = $1 AND d.endpoint_id = $2
        """,
        delivery_id,
        endpoint_id,
    )
    return Delivery(**dict(row)) if row else None


async def retry_delivery(db: Executor, endpoint_id: int, delivery_id: int) -> Delivery | None:
    """Due again now, with a fresh round of retries; None if it is not this endpoint's."""
    updated = await db.fetchval(
        f"""
        UPDATE webhook_deliveries
        SET status = {_PENDING}, attempts = 0, next_attempt_at = now(), lease_expires_at = NULL
        WHERE id = $1 AND endpoint_id = $2 RETURNING id
        """,
        delivery_id,
        endpoint_id,
    )
    if updated is None:
        return None
    return await get_delivery(db, endpoint_id, delivery_id)


@dataclass(frozen=True)
class Due:
    """A claimed delivery with what posting it takes: its event and its endpoint's secrets."""

    id: int
    attempts: int  # including the one now claimed
    endpoint_id: int
    url: str
    secrets: list[str]
    message_id: str
    event_type: str
    subject: dict[str, Any]
    occurred_at: datetime


async def claim_due(db: Executor, limit: int, lease_seconds: float) -> list[Due]:
    """Deliveries due now on enabled endpoints, at most `limit`, each held for `lease_seconds`;
    one per endpoint, its oldest, and none of an endpoint with one in flight: an endpoint's
    deliveries go one at a time, in event order. A delivery whose holder died is due again
    once its lease lapses."""
    rows = await db.fetch(
        f"""
        WITH busy AS (
            SELECT DISTINCT endpoint_id FROM webhook_deliveries
            WHERE status = {_PENDING} AND lease_expires_at > now()
        ), due AS (
            SELECT d.id, d.endpoint_id, d.event_id FROM webhook_deliveries d
            JOIN webhook_endpoints p ON p.id = d.endpoint_id AND p.enabled
            WHERE d.status = {_PENDING} AND d.next_attempt_at <= now()
              AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= now())
              AND d.endpoint_id NOT IN (SELECT endpoint_id FROM busy)
            ORDER BY d.event_id, d.id
            LIMIT $1
            FOR UPDATE OF d SKIP LOCKED
        ), oldest AS (
            SELECT DISTINCT ON (endpoint_id) id FROM due ORDER BY endpoint_id, event_id, id
        )
        UPDATE webhook_deliveries d
        SET attempts = d.attempts + 1, last_attempt_at = now(),
            lease_expires_at = now() + make_interval(secs => $2::float8)
        FROM oldest, webhook_endpoints p, webhook_events e
        WHERE d.id = oldest.id AND p.id = d.endpoint_id AND e.id = d.event_id
        RETURNING d.id, d.attempts, d.endpoint_id, p.url,
            array_remove(ARRAY[p.secret, CASE WHEN p.previous_secret_until > now()
                                             THEN p.previous_secret END], NULL) AS secrets,
            e.message_id, e.type AS event_type, e.subject::text AS subject, e.occurred_at
        """,
        limit,
        lease_seconds,
    )
    return [Due(**{**dict(row), "subject": json.loads(row["subject"])}) for row in rows]


@dataclass(frozen=True)
class Attempt:
    """What one POST of a delivery came to."""

    status_code: int | None
    error: str | None
    response: str | None
    refused: bool = False  # the address may not be reached: nothing was sent


async def record_delivered(db: Executor, due: Due, attempt: Attempt) -> None:
    """The delivery is done, and its endpoint is no longer failing (one statement: atomic)."""
    await db.execute(
        f"""
        WITH delivered AS (
            UPDATE webhook_deliveries
            SET status = {_DELIVERED}, delivered_at = now(), next_attempt_at = NULL,
                lease_expires_at = NULL, last_status_code = $2, last_error = NULL,
                last_response = $3
            WHERE id = $1 RETURNING endpoint_id
        )
        UPDATE webhook_endpoints SET failing_since = NULL
        WHERE id = (SELECT endpoint_id FROM delivered) AND failing_since IS NOT NULL
        """,
        due.id,
        attempt.status_code,
        attempt.response,
    )


async def record_failed_attempt(
    db: Executor, due: Due, attempt: Attempt, retry_in: float | None
) -> datetime | None:
    """Due again in `retry_in` seconds, or FAILED for good when None. The endpoint's failing run
    starts here if it was not failing already; when that run began is returned (None: the
    endpoint is gone)."""
    since: datetime | None = await db.fetchval(
        f"""
        WITH failed AS (
            UPDATE webhook_deliveries
            SET status = CASE WHEN $2::float8 IS NULL THEN {_FAILED} ELSE {_PENDING} END,
                next_attempt_at = now() + make_interval(secs => $2::float8),
                lease_expires_at = NULL, last_status_code = $3, last_error = $4,
                last_response = $5
            WHERE id = $1 RETURNING endpoint_id
        )
        UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, now())
        WHERE id = (SELECT endpoint_id FROM failed) RETURNING failing_since
        """,
        due.id,
        retry_in,
        attempt.status_code,
        attempt.error,
        attempt.response,
    )
    return since


@dataclass(frozen=True)
class Backlog:
    pending: int
    oldest_seconds: float  # age of the oldest pending delivery; 0 when none


async def backlog(db: Executor) -> Backlog:
    row = await db.fetchrow(
        f"""
        SELECT count(*) AS pending,
               coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest
        FROM webhook_deliveries WHERE status = {_PENDING}
        """
    )
    assert row is not None
    return Backlog(pending=row["pending"], oldest_seconds=row["oldest"])


async def prune(db: Executor, older_than_seconds: float) -> int:
    """Forget settled deliveries older than that, and events no delivery refers to any more."""
    result: str = await db.execute(
        f"""
        DELETE FROM webhook_deliveries
        WHERE status <> {_PENDING}
          AND created_at < now() - make_interval(secs => $1::float8)
        """,
        older_than_seconds,
    )
    await db.execute(
        """
        DELETE FROM webhook_events e
        WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id)
          AND e.occurred_at < now() - make_interval(secs => $1::float8)
        """,
        older_than_seconds,
    )
    return int(result.split()[-1])
