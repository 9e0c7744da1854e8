"""Webhook endpoints and their deliveries as the API shows them."""

from __future__ import annotations

from typing import Any

from videoforge.db.webhooks import Delivery, Endpoint
from videoforge.gallery.present import iso


def endpoint_json(endpoint: Endpoint, *, with_secret: bool = False) -> dict[str, Any]:
    """The endpoint; its secret only where asked (creation and rotation answer with it once)."""
    shown: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "description": endpoint.description,
        "enabled": endpoint.enabled,
        "disabledReason": endpoint.disabled_reason,
        "createdAt": iso(endpoint.created_at),
        "updatedAt": iso(endpoint.updated_at),
    }
    if with_secret:
        shown["secret"] = endpoint.secret
    return shown


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    """A delivery; `webhookId` is the `webhook-id` header receivers deduplicate on."""
    return {
        "id": delivery.id,
        "eventType": delivery.event_type,
        "webhookId": delivery.message_id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "lastStatusCode": delivery.last_status_code,
        "lastError": delivery.last_error,
        "lastResponse": delivery.last_response,
        "nextAttemptAt": iso(delivery.next_attempt_at),
        "lastAttemptAt": iso(delivery.last_attempt_at),
        "deliveredAt": iso(delivery.delivered_at),
        "createdAt": iso(delivery.created_at),
    }
