"""The delivery loop: posts due deliveries from the outbox, records each attempt, retries.

Runs in every worker process (and in `--role all`); several may run at once, each claiming its
own deliveries (`FOR UPDATE SKIP LOCKED`, then a lease). Delivery is at least once: a process
killed mid-post leaves a lease that lapses, and the delivery is posted again with the same
`webhook-id`. An endpoint's deliveries are posted one at a time in event order, as far as
retries allow (a delivery waiting to retry does not hold back the next); different endpoints'
side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
from aiohttp import web

from videoforge import __version__, keys
from videoforge.config import WebhooksConfig
from videoforge.db import webhooks as webhooks_db
from videoforge.db.webhooks import Attempt, Due
from videoforge.ops.metrics import Metrics
from videoforge.webhooks import signing
from videoforge.webhooks.addresses import CheckedResolver, Reach, RefusedAddress, check_url
from videoforge.webhooks.events import event_body

log = logging.getLogger(__name__)

# How soon a new event is sent, at most. Polled, not LISTENed for: a worker's pool is small,
# and the queue already holds one of its connections for LISTEN.
POLL_SECONDS = 0.5
OUTAGE_RETRY_SECONDS = 5.0
STOP_GRACE_SECONDS = 5.0
BATCH = 32  # deliveries claimed at once (one per endpoint)
LEASE_SLACK_SECONDS = 10.0  # beyond the request timeout, before another process may retry
RESPONSE_CAP = 1024  # bytes of a receiver's answer kept for its owner to read
JITTER = 0.1  # each retry delay, +-10%, so a burst of failures does not retry in lockstep
PRUNE_EVERY_SECONDS = 3600.0
KEEP_SETTLED_SECONDS = 30 * 86400.0
# InternalClientError: a connection left mid-error by a dropped server connection, reused.
DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)
USER_AGENT = f"videoforge-webhooks/{__version__}"


class Deliverer:
    """One process's delivery loop."""

    def __init__(self, pool: asyncpg.Pool, config: WebhooksConfig, metrics: Metrics) -> None:
        self.pool = pool
        self.config = config
        self.metrics = metrics
        self.reach = Reach(config.allow_http, config.allow_private_networks)
        self.session = aiohttp.ClientSession(
            # The resolver checks every address and hands aiohttp only those: the connection
            # goes to the address that was checked (no second lookup to rebind).
            connector=aiohttp.TCPConnector(
                resolver=CheckedResolver(self.reach), use_dns_cache=False
            ),
            timeout=aiohttp.ClientTimeout(total=config.timeout),
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
            trust_env=False,  # never through a proxy from the environment
        )
        self.pruned_at = 0.0
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        """Deliver until `stopping` is set; a database outage only pauses it."""
        while not self.stopping.is_set():
            try:
                posted = await self.deliver_due()
                await self._prune_now_and_then()
            except DB_ERRORS as exc:
                log.warning("webhooks: cannot read the outbox (%s); trying again", exc)
                await self._pause(OUTAGE_RETRY_SECONDS)
                continue
            if not posted:
                await self._pause(POLL_SECONDS)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def deliver_due(self) -> int:
        """Claim what is due (an endpoint's oldest) and post it all side by side; how many."""
        claimed = await webhooks_db.claim_due(
            self.pool, BATCH, self.config.timeout + LEASE_SLACK_SECONDS
        )
        await asyncio.gather(*(self._deliver_one(due) for due in claimed))
        return len(claimed)

    async def _deliver_one(self, due: Due) -> None:
        try:
            await self.deliver(due)
        except DB_ERRORS as exc:  # the lease lapses and the delivery is posted again
            log.warning("webhooks: delivery %d: cannot record its attempt: %s", due.id, exc)
        except Exception:
            # Never the loop's end: this delivery is tried again once its lease lapses.
            log.exception("webhooks: delivery %d failed unexpectedly", due.id)

    async def deliver(self, due: Due) -> None:
        """Post one delivery and record what came of it."""
        attempt = await self.post(due)
        if attempt.status_code is not None and 200 <= attempt.status_code < 300:
            await webhooks_db.record_delivered(self.pool, due, attempt)
            self.metrics.webhook_deliveries.labels("delivered").inc()
            return
        if attempt.status_code == 410:  # the receiver says it is gone for good
            await webhooks_db.record_failed_attempt(self.pool, due, attempt, retry_in=None)
            await webhooks_db.disable_endpoint(self.pool, due.endpoint_id, "answered 410 Gone")
            self.metrics.webhook_deliveries.labels("failed").inc()
            log.info("webhooks: endpoint %d answered 410 Gone: disabled", due.endpoint_id)
            return
        await self._failed(due, attempt)

    async def _failed(self, due: Due, attempt: Attempt) -> None:
        retry_in = self.retry_delay(due.attempts)
        since = await webhooks_db.record_failed_attempt(self.pool, due, attempt, retry_in)
        result = "refused" if attempt.refused else "retrying" if retry_in is not None else "failed"
        self.metrics.webhook_deliveries.labels(result).inc()
        limit = timedelta(days=self.config.disable_after_days)
        if since is not None and datetime.now(UTC) - since >= limit:
            reason = f"every delivery failed for {self.config.disable_after_days:g} days"
            await webhooks_db.disable_endpoint(self.pool, due.endpoint_id, reason)
            log.info("webhooks: endpoint %d disabled: %s", due.endpoint_id, reason)

    def retry_delay(self, attempts: int) -> float | None:
        """Seconds until the next try after `attempts` tries, jittered; None: none is left."""
        delays = self.config.delays
        if attempts > len(delays):
            return None
        return delays[attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)

    async def post(self, due: Due) -> Attempt:
        """One POST of the delivery, signed now; what the receiver answered, or why none."""
        body = event_body(due.event_type, due.occurred_at, due.subject)
        headers = signing.headers(due.secrets, due.message_id, int(time.time()), body)
        try:
            url = check_url(due.url, self.reach)  # its rules may have changed since; literals
            async with self.session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                answer = await _read_capped(response)
        except RefusedAddress as exc:
            return Attempt(status_code=None, error=str(exc), response=None, refused=True)
        except aiohttp.ClientConnectorError as exc:
            return Attempt(status_code=None, error=f"cannot connect: {exc.os_error}", response=None)
        except TimeoutError:
            error = f"no answer within {self.config.timeout:g} s"
            return Attempt(status_code=None, error=error, response=None)
        except aiohttp.ClientError as exc:
            return Attempt(status_code=None, error=f"{type(exc).__name__}: {exc}", response=None)
        failure = None if 200 <= response.status < 300 else f"answered {response.status}"
        return Attempt(status_code=response.status, error=failure, response=answer)

    async def _prune_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self.pruned_at >= PRUNE_EVERY_SECONDS:
            self.pruned_at = now
            await webhooks_db.prune(self.pool, KEEP_SETTLED_SECONDS)

    async def stop(self, task: asyncio.Task[None]) -> None:
        """End `run` (its task): posts in flight get `STOP_GRACE_SECONDS` to finish, then are
        cut short (their leases lapse and they are posted again, by this or another process)."""
        self.stopping.set()
        await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await self.session.close()


async def _read_capped(response: aiohttp.ClientResponse) -> str:
    """The start of the answer (a receiver may send a lot, or dribble it: neither holds us)."""
    data = b""
    while len(data) < RESPONSE_CAP:
        piece = await response.content.read(RESPONSE_CAP - len(data))
        if not piece:
            break
        data += piece
    return data.decode("utf-8", errors="replace")


async def delivery_ctx(app: web.Application) -> AsyncIterator[None]:
    """The delivery loop, for the life of a worker (or all-in-one) process."""
    deliverer = Deliverer(app[keys.DB], app[keys.CONFIG].webhooks, app[keys.METRICS])
    task = asyncio.create_task(deliverer.run(), name="webhook deliveries")
    try:
        yield
    finally:
        await deliverer.stop(task)
