"""Webhook endpoints as users manage them: register, change, rotate, test, and follow deliveries.

Only an endpoint's owner may change it or ask for deliveries; admins may read anyone's. Anyone
else's endpoint, like a missing one, is 404: ids are not a way to learn who has webhooks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection, Mapping
from typing import Any

import asyncpg
from aiohttp import web

from videoforge import keys
from videoforge.auth.tokens import Principal
from videoforge.config import Config
from videoforge.db import webhooks as webhooks_db
from videoforge.db.webhooks import Delivery, Endpoint
from videoforge.errors import BadRequest, Conflict, NotFound
from videoforge.support.paging import row_offset
from videoforge.webhooks.addresses import Reach, RefusedAddress, check_url, resolve_checked
from videoforge.webhooks.events import EVENT_TYPES
from videoforge.webhooks.present import endpoint_json
from videoforge.webhooks.signing import new_secret

log = logging.getLogger(__name__)

MAX_ENDPOINTS_PER_USER = 20
RESOLVE_TIMEOUT_SECONDS = 5.0
# Long enough for a receiver to deploy the new secret; both sign until then.
PREVIOUS_SECRET_SECONDS = 86400.0


class WebhookNotFound(NotFound):
    """Webhook not found"""


class DeliveryNotFound(NotFound):
    """Delivery not found"""


class WebhookDisabled(Conflict):
    """Webhook is disabled: enable it first"""


class TooManyWebhooks(Conflict):
    """Too many webhooks"""


def subscribed(events: Collection[str] | None) -> list[str]:
    """The event types an endpoint receives, in `EVENT_TYPES` order, each once (all if None)."""
    if events is None:
        return list(EVENT_TYPES)
    return [event for event in EVENT_TYPES if event in events]


class Webhooks:
    """One per application: users' endpoints and what was delivered to them."""

    def __init__(self, pool: asyncpg.Pool, config: Config) -> None:
        self.pool = pool
        self.reach = Reach(config.webhooks.allow_http, config.webhooks.allow_private_networks)

    async def checked_url(self, url: str) -> str:
        """`url` if webhooks may post to it: its form, and every address its host resolves to
        (checked again at each delivery, since names change); 400 saying why not."""
        try:
            parsed = check_url(url, self.reach)
        except RefusedAddress as exc:
            raise BadRequest(str(exc)) from None
        host = parsed.raw_host or ""
        port = parsed.explicit_port or (443 if parsed.scheme == "https" else 80)
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                await resolve_checked(host, port, self.reach)
        except RefusedAddress as exc:
            raise BadRequest(str(exc)) from None
        except TimeoutError:
            raise BadRequest(f"url: cannot resolve {host} (timed out)") from None
        except (OSError, UnicodeError):  # a lookup that failed otherwise; a name IDNA refuses
            raise BadRequest(f"url: cannot resolve {host}") from None
        return url

    async def create(
        self, viewer: Principal, url: str, events: Collection[str] | None, description: str
    ) -> Endpoint:
        """A new endpoint of the viewer's, with a fresh secret; 409 past the per-user cap."""
        checked = await self.checked_url(url)
        async with self.pool.acquire() as conn, conn.transaction():
            await webhooks_db.lock_user_endpoints(conn, viewer.user_id)
            _, count = await webhooks_db.list_endpoints(conn, viewer.user_id, 1, 0)
            if count >= MAX_ENDPOINTS_PER_USER:
                raise TooManyWebhooks(
                    f"Too many webhooks (at most {MAX_ENDPOINTS_PER_USER}): delete one first"
                )
            endpoint = await webhooks_db.create_endpoint(
                conn, viewer.user_id, checked, subscribed(events), description, new_secret()
            )
        log.info("webhook %d created by %s for %s", endpoint.id, viewer.user_id, checked)
        return endpoint

    async def list_own(
        self, viewer: Principal, page: int, limit: int
    ) -> tuple[list[Endpoint], int]:
        """The viewer's endpoints, oldest first, and their count."""
        offset = row_offset(page, limit)
        return await webhooks_db.list_endpoints(self.pool, viewer.user_id, limit, offset)

    async def list_all(self, page: int, limit: int) -> tuple[list[Endpoint], int]:
        """Everybody's endpoints (for admins), oldest first, and their count."""
        return await webhooks_db.list_endpoints(self.pool, None, limit, row_offset(page, limit))

    async def get(self, viewer: Principal, endpoint_id: int) -> Endpoint:
        """The viewer's endpoint (admins: anyone's), to read."""
        endpoint = await webhooks_db.get_endpoint(self.pool, endpoint_id)
        if endpoint is None or (endpoint.user_id != viewer.user_id and not viewer.is_admin):
            raise WebhookNotFound()
        return endpoint

    async def own(self, viewer: Principal, endpoint_id: int) -> Endpoint:
        """The viewer's own endpoint, to change or use: admins too get 404 on anyone else's."""
        endpoint = await webhooks_db.get_endpoint(self.pool, endpoint_id)
        if endpoint is None or endpoint.user_id != viewer.user_id:
            raise WebhookNotFound()
        return endpoint

    async def update(
        self, viewer: Principal, endpoint_id: int, changes: Mapping[str, Any]
    ) -> Endpoint:
        """Change the URL, events, description or enabled flag, each checked as on creation."""
        await self.own(viewer, endpoint_id)
        checked = dict(changes)
        if "url" in checked:
            checked["url"] = await self.checked_url(checked["url"])
        if "events" in checked:
            checked["events"] = subscribed(checked["events"])
        endpoint = await webhooks_db.update_endpoint(self.pool, endpoint_id, checked)
        if endpoint is None:  # deleted meanwhile
            raise WebhookNotFound()
        log.info("webhook %d changed by %s: %s", endpoint_id, viewer.user_id, sorted(checked))
        return endpoint

    async def delete(self, viewer: Principal, endpoint_id: int) -> None:
        """Remove the endpoint and its deliveries."""
        await self.own(viewer, endpoint_id)
        if not await webhooks_db.delete_endpoint(self.pool, endpoint_id):
            raise WebhookNotFound()
        log.info("webhook %d deleted by %s", endpoint_id, viewer.user_id)

    async def rotate_secret(self, viewer: Principal, endpoint_id: int) -> Endpoint:
        """A new secret; the previous one keeps signing for `PREVIOUS_SECRET_SECONDS`."""
        await self.own(viewer, endpoint_id)
        endpoint = await webhooks_db.rotate_secret(
            self.pool, endpoint_id, new_secret(), keep_previous_seconds=PREVIOUS_SECRET_SECONDS
        )
        if endpoint is None:
            raise WebhookNotFound()
        log.info("webhook %d: secret rotated by %s", endpoint_id, viewer.user_id)
        return endpoint

    async def send_test(self, viewer: Principal, endpoint_id: int) -> Delivery:
        """A `webhook.test` event for this endpoint alone, due now: its data is the endpoint
        as the API shows it (no secret)."""
        endpoint = await self.own(viewer, endpoint_id)
        if not endpoint.enabled:
            raise WebhookDisabled()
        delivery_id = await webhooks_db.record_test_event(
            self.pool, endpoint, subject=endpoint_json(endpoint)
        )
        delivery = await webhooks_db.get_delivery(self.pool, endpoint_id, delivery_id)
        if delivery is None:  # the endpoint was deleted meanwhile, and its deliveries with it
            raise WebhookNotFound()
        log.info("webhook %d: test event queued by %s", endpoint_id, viewer.user_id)
        return delivery

    async def deliveries(
        self, viewer: Principal, endpoint_id: int, page: int, limit: int
    ) -> tuple[list[Delivery], int]:
        """The endpoint's deliveries (admins: anyone's), newest first, and their count."""
        await self.get(viewer, endpoint_id)
        offset = row_offset(page, limit)
        return await webhooks_db.list_deliveries(self.pool, endpoint_id, limit, offset)

    async def retry(self, viewer: Principal, endpoint_id: int, delivery_id: int) -> Delivery:
        """Make one of the endpoint's deliveries due now, with a fresh round of retries."""
        await self.own(viewer, endpoint_id)
        delivery = await webhooks_db.retry_delivery(self.pool, endpoint_id, delivery_id)
        if delivery is None:
            raise DeliveryNotFound()
        log.info("webhook %d: delivery %d retried by %s", endpoint_id, delivery_id, viewer.user_id)
        return delivery


async def webhooks_ctx(app: web.Application) -> AsyncIterator[None]:
    app[keys.WEBHOOKS] = Webhooks(app[keys.DB], app[keys.CONFIG])
    yield
