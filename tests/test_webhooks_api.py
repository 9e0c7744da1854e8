"""Webhook endpoints through the HTTP API: register, list, change, rotate, test, deliveries.

The app runs as the API role only, so no delivery loop takes the deliveries these tests make:
what they assert is what the API recorded, not what a receiver got.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from tests.errors_support import assert_error
from tests.fixtures.config import MakeConfig
from tests.gallery_support import ADMIN, ALICE, BOB, ISO_UTC, Gallery, StartGallery, expect
from videoforge import keys
from videoforge.db import webhooks as webhooks_db
from videoforge.webhooks.events import EVENT_TYPES
from videoforge.webhooks.service import MAX_ENDPOINTS_PER_USER

# Nothing listens there, and nothing is sent in these tests anyway.
LOCAL_URL = "http://127.0.0.1:9/hooks"
ENDPOINT_KEYS = {
    "id",
    "url",
    "events",
    "description",
    "enabled",
    "disabledReason",
    "createdAt",
    "updatedAt",
}
DELIVERY_KEYS = {
    "id",
    "eventType",
    "webhookId",
    "status",
    "attempts",
    "lastStatusCode",
    "lastError",
    "lastResponse",
    "nextAttemptAt",
    "lastAttemptAt",
    "deliveredAt",
    "createdAt",
}


@pytest.fixture
async def hooks(start_gallery: StartGallery, make_config: MakeConfig) -> Gallery:
    """The API where local receivers may be registered (plain HTTP, private addresses)."""
    config = make_config(webhooks={"allow_http": True, "allow_private_networks": True})
    return await start_gallery(config, role="api")


@pytest.fixture
async def strict(start_gallery: StartGallery) -> Gallery:
    """The API with the default rules: HTTPS only, public addresses only."""
    return await start_gallery(role="api")


async def create(gallery: Gallery, user: str, **body: Any) -> aiohttp.ClientResponse:
    return await gallery.request("POST", "/api/webhooks", user, json={"url": LOCAL_URL, **body})


async def created(gallery: Gallery, user: str = ALICE, **body: Any) -> dict[str, Any]:
    """A new endpoint of `user`'s, as the creation answered (secret included)."""
    answer = await expect(await create(gallery, user, **body), 201)
    webhook: dict[str, Any] = answer["webhook"]
    return webhook


async def shown(gallery: Gallery, webhook_id: int, user: str = ALICE) -> dict[str, Any]:
    answer = await expect(await gallery.request("GET", f"/api/webhooks/{webhook_id}", user), 200)
    webhook: dict[str, Any] = answer["webhook"]
    return webhook


async def patch(
    gallery: Gallery, webhook_id: int, body: Any, user: str = ALICE
) -> aiohttp.ClientResponse:
    return await gallery.request("PATCH", f"/api/webhooks/{webhook_id}", user, json=body)


async def send_test(gallery: Gallery, webhook_id: int, user: str = ALICE) -> dict[str, Any]:
    answer = await expect(
        await gallery.request("POST", f"/api/webhooks/{webhook_id}/test", user), 202
    )
    delivery: dict[str, Any] = answer["delivery"]
    return delivery


async def deliveries(gallery: Gallery, webhook_id: int, user: str = ALICE) -> dict[str, Any]:
    path = f"/api/webhooks/{webhook_id}/deliveries"
    listing: dict[str, Any] = await expect(await gallery.request("GET", path, user), 200)
    return listing


async def refused(response: aiohttp.ClientResponse, message: str | None = None) -> str:
    """A 400 with an `error` (`message`, where given), and `details` if a schema refused it."""
    text = await response.text()
    assert response.status == 400, f"expected 400, got {response.status}: {text}"
    body = json.loads(text)
    assert {"error"} <= set(body) <= {"error", "details"}, text
    assert message is None or body["error"] == message, f"expected {message!r}: {text}"
    return str(body["error"])


def assert_secret(secret: Any) -> None:
    """`whsec_` and the base64 of at least 24 random bytes."""
    assert isinstance(secret, str) and secret.startswith("whsec_"), secret
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    assert len(key) >= 24, secret


# --- create --------------------------------------------------------------------------------


async def test_create_answers_with_a_secret_and_every_event_type_by_default(
    hooks: Gallery,
) -> None:
    webhook = await created(hooks, description="  my receiver  ")

    assert set(webhook) == ENDPOINT_KEYS | {"secret"}
    assert_secret(webhook["secret"])
    assert webhook["url"] == LOCAL_URL
    assert webhook["events"] == list(EVENT_TYPES)
    assert webhook["description"] == "my receiver"
    assert (webhook["enabled"], webhook["disabledReason"]) == (True, None)
    assert ISO_UTC.fullmatch(webhook["createdAt"]) and ISO_UTC.fullmatch(webhook["updatedAt"])


async def test_create_keeps_each_event_type_once_in_the_order_of_event_types(
    hooks: Gallery,
) -> None:
    webhook = await created(hooks, events=["job.failed", "video.ready", "job.failed"])

    assert webhook["events"] == ["video.ready", "job.failed"]
    assert (await shown(hooks, webhook["id"]))["events"] == ["video.ready", "job.failed"]


async def test_each_endpoint_gets_a_secret_of_its_own(hooks: Gallery) -> None:
    first, second = await created(hooks), await created(hooks)

    assert first["secret"] != second["secret"]


async def test_create_with_an_unknown_event_type_is_refused_naming_it(hooks: Gallery) -> None:
    message = await refused(await create(hooks, ALICE, events=["job.completed", "job.exploded"]))

    assert "job.exploded" in message and message.startswith("events:")


async def test_create_with_no_event_types_is_refused(hooks: Gallery) -> None:
    await refused(await create(hooks, ALICE, events=[]), "events: give at least one event type")


async def test_test_event_type_is_not_one_to_subscribe_to(hooks: Gallery) -> None:
    message = await refused(await create(hooks, ALICE, events=["webhook.test"]))

    assert "webhook.test" in message


@pytest.mark.parametrize(
    "body",
    [
        {"url": "http://x/" + "a" * 2040},  # 2049 characters
        {"description": "d" * 501},
        {"url": ""},
        {"url": 42},
        {"events": "job.failed"},
        {"unknown": 1},
    ],
    ids=["long-url", "long-description", "empty-url", "number-url", "events-string", "unknown"],
)
async def test_create_with_a_malformed_body_is_refused(hooks: Gallery, body: Any) -> None:
    await refused(await create(hooks, ALICE, **body))
    assert (await expect(await hooks.request("GET", "/api/webhooks", ALICE), 200))["webhooks"] == []


async def test_create_without_a_url_is_refused(hooks: Gallery) -> None:
    response = await hooks.request("POST", "/api/webhooks", ALICE, json={"events": ["job.failed"]})

    await refused(response, "url is required")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/hooks", "url: only https URLs are allowed"),
        ("https://user:pass@example.com/hooks", "url: must not carry credentials"),
        ("https://localhost:8080/", "loopback"),
        ("https://127.0.0.1/hooks", "url: 127.0.0.1 is a loopback address"),
        ("https://10.1.2.3/hooks", "url: 10.1.2.3 is a private address"),
        ("https://nonexistent.invalid/hooks", "url: cannot resolve nonexistent.invalid"),
        ("ftp://example.com/", "url: only https URLs are allowed"),
    ],
)
async def test_create_refuses_urls_the_default_rules_refuse(
    strict: Gallery, url: str, reason: str
) -> None:
    message = await refused(await create(strict, ALICE, url=url))

    assert reason in message


async def test_http_localhost_is_refused_as_loopback_when_only_http_is_allowed(
    start_gallery: StartGallery, make_config: MakeConfig
) -> None:
    gallery = await start_gallery(make_config(webhooks={"allow_http": True}), role="api")

    message = await refused(await create(gallery, ALICE, url="http://localhost:8080/"))

    assert message.startswith("url: ") and "loopback" in message and "localhost" in message


async def test_cloud_metadata_address_is_refused_even_where_private_networks_are_allowed(
    hooks: Gallery,
) -> None:
    response = await create(hooks, ALICE, url="http://169.254.169.254/latest/meta-data/")

    await refused(response, "url: 169.254.169.254 is a cloud metadata address")


async def test_localhost_is_accepted_where_private_networks_are_allowed(hooks: Gallery) -> None:
    webhook = await created(hooks, url="http://localhost:8080/hooks")

    assert webhook["url"] == "http://localhost:8080/hooks"


async def test_anonymous_callers_are_refused(hooks: Gallery) -> None:
    await assert_error(await hooks.request("POST", "/api/webhooks", json={"url": LOCAL_URL}), 401)
    await assert_error(await hooks.request("GET", "/api/webhooks"), 401)


async def test_a_user_may_register_at_most_the_cap(hooks: Gallery) -> None:
    for _ in range(MAX_ENDPOINTS_PER_USER):
        await created(hooks)

    await assert_error(
        await create(hooks, ALICE),
        409,
        f"Too many webhooks (at most {MAX_ENDPOINTS_PER_USER}): delete one first",
    )
    await created(hooks, BOB)  # the cap is per user
    listing = await expect(await hooks.request("GET", "/api/webhooks?limit=1", ALICE), 200)
    assert listing["pagination"]["total"] == MAX_ENDPOINTS_PER_USER


async def test_concurrent_registrations_stop_at_the_cap(hooks: Gallery) -> None:
    await asyncio.gather(*(created(hooks) for _ in range(MAX_ENDPOINTS_PER_USER - 3)))

    responses = await asyncio.gather(*(create(hooks, ALICE) for _ in range(8)))

    statuses = sorted(r.status for r in responses)
    assert statuses.count(201) == 3, statuses
    assert set(statuses) <= {201, 409, 429}, statuses
    listing = await expect(await hooks.request("GET", "/api/webhooks?limit=1", ALICE), 200)
    assert listing["pagination"]["total"] == MAX_ENDPOINTS_PER_USER


async def test_registrations_through_several_servers_never_pass_the_cap(
    start_gallery: StartGallery, make_config: MakeConfig
) -> None:
    # Servers on one database: only the database can keep them under the cap together.
    settings = {"allow_http": True, "allow_private_networks": True}
    servers = [await start_gallery(make_config(webhooks=settings), role="api") for _ in range(4)]
    await asyncio.gather(*(created(servers[0]) for _ in range(MAX_ENDPOINTS_PER_USER - 2)))

    responses = await asyncio.gather(*(create(s, ALICE) for s in servers * 3))

    statuses = [r.status for r in responses]
    assert set(statuses) <= {201, 409, 429}, statuses
    listing = await expect(await servers[1].request("GET", "/api/webhooks?limit=1", ALICE), 200)
    assert listing["pagination"]["total"] == MAX_ENDPOINTS_PER_USER - 2 + statuses.count(201)
    assert listing["pagination"]["total"] <= MAX_ENDPOINTS_PER_USER


async def test_deleting_one_makes_room_under_the_cap(hooks: Gallery) -> None:
    ids = [(await created(hooks))["id"] for _ in range(MAX_ENDPOINTS_PER_USER)]
    await hooks.request("DELETE", f"/api/webhooks/{ids[0]}", ALICE)

    await created(hooks)


# --- read ----------------------------------------------------------------------------------


async def test_list_and_get_never_show_the_secret(hooks: Gallery) -> None:
    webhook = await created(hooks)

    listing = await expect(await hooks.request("GET", "/api/webhooks", ALICE), 200)
    one = await shown(hooks, webhook["id"])

    assert [set(item) for item in listing["webhooks"]] == [ENDPOINT_KEYS]
    assert set(one) == ENDPOINT_KEYS
    assert one == {k: v for k, v in webhook.items() if k != "secret"}
    assert webhook["secret"] not in json.dumps([listing, one])


async def test_list_is_the_callers_own_oldest_first_in_pages(hooks: Gallery) -> None:
    mine = [(await created(hooks, description=f"n{i}"))["id"] for i in range(3)]
    await created(hooks, BOB)

    first = await expect(await hooks.request("GET", "/api/webhooks?limit=2", ALICE), 200)
    second = await expect(await hooks.request("GET", "/api/webhooks?limit=2&page=2", ALICE), 200)

    assert [w["id"] for w in first["webhooks"] + second["webhooks"]] == mine
    assert first["pagination"] == {"total": 3, "page": 1, "limit": 2, "totalPages": 2}
    assert second["pagination"] == {"total": 3, "page": 2, "limit": 2, "totalPages": 2}


async def test_admin_lists_everybodys_webhooks_without_secrets(hooks: Gallery) -> None:
    alices, bobs = await created(hooks), await created(hooks, BOB)

    listing = await expect(await hooks.request("GET", "/api/webhooks/admin/all", ADMIN), 200)

    assert [w["id"] for w in listing["webhooks"]] == [alices["id"], bobs["id"]]
    assert all(set(w) == ENDPOINT_KEYS for w in listing["webhooks"])
    assert listing["pagination"]["total"] == 2


async def test_admin_listing_is_for_admins_only(hooks: Gallery) -> None:
    await assert_error(await hooks.request("GET", "/api/webhooks/admin/all", ALICE), 403)


async def test_admin_may_read_anyones_webhook_and_deliveries(hooks: Gallery) -> None:
    webhook = await created(hooks)
    delivery = await send_test(hooks, webhook["id"])

    assert (await shown(hooks, webhook["id"], ADMIN))["id"] == webhook["id"]
    listing = await deliveries(hooks, webhook["id"], ADMIN)
    assert [d["id"] for d in listing["deliveries"]] == [delivery["id"]]


@pytest.mark.parametrize("webhook_id", ["abc", "0", "-1", "99999999", "9" * 30])
async def test_a_missing_or_malformed_id_is_not_found(hooks: Gallery, webhook_id: str) -> None:
    await assert_error(
        await hooks.request("GET", f"/api/webhooks/{webhook_id}", ALICE), 404, "Webhook not found"
    )


# --- another user's endpoint -----------------------------------------------------------------


def _routes(webhook_id: int, delivery_id: int) -> list[tuple[str, str, Any]]:
    base = f"/api/webhooks/{webhook_id}"
    return [
        ("GET", base, None),
        ("PATCH", base, {"description": "mine now"}),
        ("DELETE", base, None),
        ("POST", f"{base}/rotate-secret", None),
        ("POST", f"{base}/test", None),
        ("GET", f"{base}/deliveries", None),
        ("POST", f"{base}/deliveries/{delivery_id}/retry", None),
    ]


async def test_another_users_webhook_is_not_found_on_every_route(hooks: Gallery) -> None:
    webhook = await created(hooks)
    delivery = await send_test(hooks, webhook["id"])

    for method, path, body in _routes(webhook["id"], delivery["id"]):
        response = await hooks.request(method, path, BOB, json=body)
        await assert_error(response, 404, "Webhook not found")

    assert await shown(hooks, webhook["id"]) == {k: v for k, v in webhook.items() if k != "secret"}
    assert len((await deliveries(hooks, webhook["id"]))["deliveries"]) == 1


async def test_admins_may_not_change_anyone_elses_webhook(hooks: Gallery) -> None:
    webhook = await created(hooks)
    delivery = await send_test(hooks, webhook["id"])

    for method, path, body in _routes(webhook["id"], delivery["id"]):
        if method == "GET":
            continue
        response = await hooks.request(method, path, ADMIN, json=body)
        await assert_error(response, 404, "Webhook not found")

    assert (await shown(hooks, webhook["id"]))["description"] == ""


# --- change --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"url": "http://127.0.0.1:8/other"}, {"url": "http://127.0.0.1:8/other"}),
        (
            {"events": ["job.cancelled", "video.deleted"]},
            {"events": ["video.deleted", "job.cancelled"]},
        ),
        ({"description": "new words"}, {"description": "new words"}),
        ({"enabled": False}, {"enabled": False}),
    ],
    ids=["url", "events", "description", "enabled"],
)
async def test_patch_changes_that_field_alone(
    hooks: Gallery, change: dict[str, Any], expected: dict[str, Any]
) -> None:
    webhook = await created(hooks, description="old words")
    before = {k: v for k, v in webhook.items() if k not in ("secret", "updatedAt")}

    answer = await expect(await patch(hooks, webhook["id"], change), 200)

    assert set(answer["webhook"]) == ENDPOINT_KEYS
    after = {k: v for k, v in answer["webhook"].items() if k != "updatedAt"}
    assert after == {**before, **expected}
    assert await shown(hooks, webhook["id"]) == answer["webhook"]


async def test_enabling_a_disabled_webhook_clears_why_it_was_disabled(hooks: Gallery) -> None:
    webhook = await created(hooks)
    await webhooks_db.disable_endpoint(hooks.app[keys.DB], webhook["id"], "failing for 5 days")
    assert (await shown(hooks, webhook["id"]))["disabledReason"] == "failing for 5 days"

    answer = await expect(await patch(hooks, webhook["id"], {"enabled": True}), 200)

    assert (answer["webhook"]["enabled"], answer["webhook"]["disabledReason"]) == (True, None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "No fields to update"),
        ({"events": []}, "events: give at least one event type"),
        ({"events": ["job.melted"]}, None),
        ({"enabled": "yes"}, "enabled: Not a valid boolean."),
        ({"enabled": 1}, "enabled: Not a valid boolean."),
        ({"description": "d" * 501}, None),
        ({"url": None}, None),
        ({"secret": "whsec_AAAA"}, None),
        ({"url": "http://169.254.169.254/"}, "url: 169.254.169.254 is a cloud metadata address"),
        ({"url": "https://user@127.0.0.1/"}, "url: must not carry credentials"),
    ],
)
async def test_patch_with_a_refused_body_changes_nothing(
    hooks: Gallery, body: dict[str, Any], message: str | None
) -> None:
    webhook = await created(hooks)

    await refused(await patch(hooks, webhook["id"], body), message)

    assert await shown(hooks, webhook["id"]) == {k: v for k, v in webhook.items() if k != "secret"}


async def test_patch_url_is_checked_by_the_deployments_rules(strict: Gallery) -> None:
    endpoint = await webhooks_db.create_endpoint(
        strict.app[keys.DB], ALICE, "https://example.com/hooks", list(EVENT_TYPES), "", "whsec_x"
    )

    response = await patch(strict, endpoint.id, {"url": "https://127.0.0.1/hooks"})

    await refused(response, "url: 127.0.0.1 is a loopback address")


async def test_delete_removes_the_webhook_and_its_deliveries(hooks: Gallery) -> None:
    webhook = await created(hooks)
    await send_test(hooks, webhook["id"])

    response = await hooks.request("DELETE", f"/api/webhooks/{webhook['id']}", ALICE)

    assert response.status == 204
    await assert_error(
        await hooks.request("GET", f"/api/webhooks/{webhook['id']}", ALICE),
        404,
        "Webhook not found",
    )
    await assert_error(await hooks.request("DELETE", f"/api/webhooks/{webhook['id']}", ALICE), 404)
    count = await hooks.app[keys.DB].fetchval(
        "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1", webhook["id"]
    )
    assert count == 0


# --- secrets -------------------------------------------------------------------------------


async def test_rotate_secret_answers_with_a_new_one_and_keeps_the_old_for_a_day(
    hooks: Gallery,
) -> None:
    webhook = await created(hooks)
    path = f"/api/webhooks/{webhook['id']}/rotate-secret"

    answer = await expect(await hooks.request("POST", path, ALICE), 200)

    rotated = answer["webhook"]
    assert set(rotated) == ENDPOINT_KEYS | {"secret"}
    assert_secret(rotated["secret"])
    assert rotated["secret"] != webhook["secret"]
    assert "secret" not in await shown(hooks, webhook["id"])
    stored = await webhooks_db.get_endpoint(hooks.app[keys.DB], webhook["id"])
    assert stored is not None and stored.previous_secret_until is not None
    assert (stored.secret, stored.previous_secret) == (rotated["secret"], webhook["secret"])
    kept = stored.previous_secret_until - datetime.now(UTC)
    assert timedelta(hours=23) < kept <= timedelta(hours=24)


# --- test events and deliveries ------------------------------------------------------------


async def test_test_event_is_a_pending_delivery_listed_with_the_endpoint_as_its_data(
    hooks: Gallery,
) -> None:
    webhook = await created(hooks)

    delivery = await send_test(hooks, webhook["id"])

    assert set(delivery) == DELIVERY_KEYS
    assert (delivery["eventType"], delivery["status"], delivery["attempts"]) == (
        "webhook.test",
        "PENDING",
        0,
    )
    assert delivery["webhookId"].startswith("msg_")
    assert ISO_UTC.fullmatch(delivery["createdAt"]) and ISO_UTC.fullmatch(delivery["nextAttemptAt"])
    listing = await deliveries(hooks, webhook["id"])
    assert listing["deliveries"] == [delivery]
    assert listing["pagination"] == {"total": 1, "page": 1, "limit": 10, "totalPages": 1}
    subject = await hooks.app[keys.DB].fetchval(
        "SELECT e.subject::text FROM webhook_events e JOIN webhook_deliveries d"
        " ON d.event_id = e.id WHERE d.id = $1",
        delivery["id"],
    )
    assert json.loads(subject) == await shown(hooks, webhook["id"])


async def test_test_event_goes_to_that_endpoint_alone(hooks: Gallery) -> None:
    first, second = await created(hooks), await created(hooks)

    await send_test(hooks, first["id"])

    assert len((await deliveries(hooks, first["id"]))["deliveries"]) == 1
    assert (await deliveries(hooks, second["id"]))["deliveries"] == []


async def test_deliveries_are_listed_newest_first(hooks: Gallery) -> None:
    webhook = await created(hooks)
    ids = [(await send_test(hooks, webhook["id"]))["id"] for _ in range(3)]

    listing = await deliveries(hooks, webhook["id"])
    path = f"/api/webhooks/{webhook['id']}/deliveries?limit=2&page=2"
    last_page = await expect(await hooks.request("GET", path, ALICE), 200)

    assert [d["id"] for d in listing["deliveries"]] == ids[::-1]
    assert [d["id"] for d in last_page["deliveries"]] == ids[:1]


async def test_test_event_on_a_disabled_webhook_is_a_conflict(hooks: Gallery) -> None:
    webhook = await created(hooks)
    await expect(await patch(hooks, webhook["id"], {"enabled": False}), 200)

    response = await hooks.request("POST", f"/api/webhooks/{webhook['id']}/test", ALICE)

    await assert_error(response, 409, "Webhook is disabled: enable it first")
    assert (await deliveries(hooks, webhook["id"]))["deliveries"] == []


async def test_retry_of_a_failed_delivery_makes_it_pending_with_no_attempts(
    hooks: Gallery,
) -> None:
    webhook = await created(hooks)
    delivery = await send_test(hooks, webhook["id"])
    await hooks.app[keys.DB].execute(
        """
        UPDATE webhook_deliveries
        SET status = 'FAILED', attempts = 8, next_attempt_at = NULL, last_attempt_at = now(),
            last_status_code = 500, last_error = 'HTTP 500', last_response = 'oops'
        WHERE id = $1
        """,
        delivery["id"],
    )
    failed = (await deliveries(hooks, webhook["id"]))["deliveries"][0]
    assert (failed["status"], failed["attempts"], failed["lastStatusCode"]) == ("FAILED", 8, 500)

    path = f"/api/webhooks/{webhook['id']}/deliveries/{delivery['id']}/retry"
    answer = await expect(await hooks.request("POST", path, ALICE), 202)

    retried = answer["delivery"]
    assert (retried["id"], retried["status"], retried["attempts"]) == (delivery["id"], "PENDING", 0)
    assert retried["webhookId"] == delivery["webhookId"]  # the same message to receivers
    assert retried["nextAttemptAt"] is not None
    assert (await deliveries(hooks, webhook["id"]))["deliveries"] == [retried]


async def test_retry_of_another_endpoints_delivery_is_not_found(hooks: Gallery) -> None:
    first, second = await created(hooks), await created(hooks)
    delivery = await send_test(hooks, first["id"])

    wrong = f"/api/webhooks/{second['id']}/deliveries/{delivery['id']}/retry"
    await assert_error(await hooks.request("POST", wrong, ALICE), 404, "Delivery not found")
    for missing in ("999999", "abc", "0"):
        path = f"/api/webhooks/{first['id']}/deliveries/{missing}/retry"
        await assert_error(await hooks.request("POST", path, ALICE), 404, "Delivery not found")
