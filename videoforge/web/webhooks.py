"""Webhook routes: register endpoints, change and test them, read and retry their deliveries.

The admin listing comes first: `/api/webhooks/{id}` must not take `admin` for an id.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from videoforge import keys
from videoforge.auth.tokens import require_admin, require_user
from videoforge.support.paging import MAX_LIMIT, pagination_json
from videoforge.web.bodies import load_body, path_id, validate
from videoforge.web.openapi import documented
from videoforge.web.schemas import CreateWebhookSchema, PageQuerySchema, UpdateWebhookSchema
from videoforge.webhooks.present import delivery_json, endpoint_json
from videoforge.webhooks.service import DeliveryNotFound, WebhookNotFound, Webhooks

routes = web.RouteTableDef()
CREATE_WEBHOOK = CreateWebhookSchema()
UPDATE_WEBHOOK = UpdateWebhookSchema()
PAGE_QUERY = PageQuerySchema()


def _webhooks(request: web.Request) -> Webhooks:
    return request.app[keys.WEBHOOKS]


def _webhook_id(request: web.Request) -> int:
    return path_id(request, "id", WebhookNotFound)


def _page(request: web.Request) -> tuple[int, int]:
    query = validate(PAGE_QUERY, dict(request.query))
    return query["page"], min(query["limit"], MAX_LIMIT)


def _listing(shown: list[dict[str, Any]], total: int, page: int, limit: int) -> web.Response:
    return web.json_response({"webhooks": shown, "pagination": pagination_json(total, page, limit)})


@routes.get("/api/webhooks/admin/all")
@documented(auth="admin", query=PageQuerySchema)
async def all_webhooks(request: web.Request) -> web.Response:
    """Every user's webhook endpoints, oldest first."""
    await require_admin(request)
    page, limit = _page(request)
    endpoints, total = await _webhooks(request).list_all(page, limit)
    return _listing([endpoint_json(e) for e in endpoints], total, page, limit)


@routes.post("/api/webhooks")
@documented(body=CreateWebhookSchema, statuses=(201,), errors=(409, 429))
async def create_webhook(request: web.Request) -> web.Response:
    """Register a URL to post events to; the answer holds its signing secret, shown only here.

    Events are signed as Standard Webhooks. Without `events` the endpoint receives every type.
    """
    viewer = await require_user(request)
    body = await load_body(request, CREATE_WEBHOOK)
    endpoint = await _webhooks(request).create(
        viewer, body["url"], body["events"], body["description"]
    )
    return web.json_response({"webhook": endpoint_json(endpoint, with_secret=True)}, status=201)


@routes.get("/api/webhooks")
@documented(query=PageQuerySchema)
async def list_webhooks(request: web.Request) -> web.Response:
    """The caller's webhook endpoints, oldest first."""
    viewer = await require_user(request)
    page, limit = _page(request)
    endpoints, total = await _webhooks(request).list_own(viewer, page, limit)
    return _listing([endpoint_json(e) for e in endpoints], total, page, limit)


@routes.get("/api/webhooks/{id}")
@documented(errors=(404,))
async def get_webhook(request: web.Request) -> web.Response:
    """One of the caller's webhook endpoints (its secret is not shown again)."""
    viewer = await require_user(request)
    endpoint = await _webhooks(request).get(viewer, _webhook_id(request))
    return web.json_response({"webhook": endpoint_json(endpoint)})


@routes.patch("/api/webhooks/{id}")
@documented(body=UpdateWebhookSchema, errors=(404,))
async def update_webhook(request: web.Request) -> web.Response:
    """Change a webhook's URL, events, description, or whether it is enabled."""
    viewer = await require_user(request)
    webhook_id = _webhook_id(request)
    changes = await load_body(request, UPDATE_WEBHOOK)
    endpoint = await _webhooks(request).update(viewer, webhook_id, changes)
    return web.json_response({"webhook": endpoint_json(endpoint)})


@routes.delete("/api/webhooks/{id}")
@documented(statuses=(204,), errors=(404,))
async def delete_webhook(request: web.Request) -> web.Response:
    """Delete a webhook endpoint and its deliveries."""
    viewer = await require_user(request)
    await _webhooks(request).delete(viewer, _webhook_id(request))
    return web.Response(status=204)


@routes.post("/api/webhooks/{id}/rotate-secret")
@documented(errors=(404,))
async def rotate_webhook_secret(request: web.Request) -> web.Response:
    """A new signing secret, shown only here; the previous one keeps signing for 24 hours."""
    viewer = await require_user(request)
    endpoint = await _webhooks(request).rotate_secret(viewer, _webhook_id(request))
    return web.json_response({"webhook": endpoint_json(endpoint, with_secret=True)})


@routes.post("/api/webhooks/{id}/test")
@documented(statuses=(202,), errors=(404, 409))
async def test_webhook(request: web.Request) -> web.Response:
    """Queue a `webhook.test` event for this endpoint alone; its data is the endpoint."""
    viewer = await require_user(request)
    delivery = await _webhooks(request).send_test(viewer, _webhook_id(request))
    return web.json_response({"delivery": delivery_json(delivery)}, status=202)


@routes.get("/api/webhooks/{id}/deliveries")
@documented(query=PageQuerySchema, errors=(404,))
async def list_webhook_deliveries(request: web.Request) -> web.Response:
    """A webhook's deliveries, newest first: status, attempts and the last answer."""
    viewer = await require_user(request)
    webhook_id = _webhook_id(request)
    page, limit = _page(request)
    deliveries, total = await _webhooks(request).deliveries(viewer, webhook_id, page, limit)
    body: dict[str, Any] = {
        "deliveries": [delivery_json(d) for d in deliveries],
        "pagination": pagination_json(total, page, limit),
    }
    return web.json_response(body)


@routes.post("/api/webhooks/{id}/deliveries/{deliveryId}/retry")
@documented(statuses=(202,), errors=(404,))
async def retry_webhook_delivery(request: web.Request) -> web.Response:
    """Send a delivery again now, with a fresh round of retries."""
    viewer = await require_user(request)
    delivery = await _webhooks(request).retry(
        viewer, _webhook_id(request), path_id(request, "deliveryId", DeliveryNotFound)
    )
    return web.json_response({"delivery": delivery_json(delivery)}, status=202)
