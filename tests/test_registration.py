"""Registering a local account: a name that is already somebody's identity (through tokens only)
cannot be claimed with its data, and the account routes take only JSON bodies, so that a page on
another site cannot register or sign a browser in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.errors_support import assert_error
from tests.fixtures.config import MakeConfig
from tests.gallery_support import ALICE, Gallery, StartGallery, expect
from tests.jobs_support import create_job
from videoforge import keys

OPS = "ops"
CLAIM = {"username": OPS, "password": "iamnotops123"}
# What a cross-site form (or a fetch without a CORS preflight) sends.
CROSS_SITE = {
    "Content-Type": "text/plain",
    "Sec-Fetch-Site": "cross-site",
    "Origin": "http://evil.example",
}


@pytest.fixture
async def api(start_gallery: StartGallery, make_config: MakeConfig) -> Gallery:
    """The API alone (no worker picks up jobs), where a local webhook receiver may be named."""
    config = make_config(webhooks={"allow_http": True, "allow_private_networks": True})
    return await start_gallery(config, role="api")


async def private_video(gallery: Gallery) -> None:
    await gallery.upload(OPS, title="Ops only", visibility="private")


async def upload_in_flight(gallery: Gallery) -> None:
    await gallery.uploaded_key(OPS)


async def job(gallery: Gallery) -> None:
    await create_job(gallery, OPS, await gallery.uploaded_key(OPS))


async def webhook(gallery: Gallery) -> None:
    body = {"url": "http://127.0.0.1:9/hooks", "events": ["video.ready"]}
    await expect(await gallery.request("POST", "/api/webhooks", OPS, json=body), 201)


async def account_count(gallery: Gallery) -> int:
    count: int = await gallery.app[keys.DB].fetchval("SELECT count(*) FROM users")
    return count


@pytest.mark.parametrize("owns", [private_video, upload_in_flight, job, webhook])
async def test_registering_a_name_that_owns_anything_is_409_and_creates_nothing(
    api: Gallery, owns: Callable[[Gallery], Awaitable[None]]
) -> None:
    await owns(api)  # as `videoforge token --user ops` would let an operator do

    response = await api.client.post("/api/auth/register", json=CLAIM)

    await assert_error(response, 409, "Username already taken")
    assert await account_count(api) == 0
    signed_in = await api.client.post("/api/auth/login", json=CLAIM)
    await assert_error(signed_in, 401, "Invalid username or password")


# --- JSON bodies only -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/login"])
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
async def test_account_routes_refuse_a_body_not_sent_as_json_with_415(
    api: Gallery, path: str, content_type: str | None
) -> None:
    await expect(
        await api.client.post("/api/auth/register", json={**CLAIM, "username": ALICE}), 201
    )
    headers = {**CROSS_SITE, "Content-Type": content_type or ""}
    body = f'{{"username": "{ALICE}", "password": "{CLAIM["password"]}"}}'.encode()
    if content_type is None:  # aiohttp then labels raw bytes application/octet-stream
        headers.pop("Content-Type")

    response = await api.client.post(path, data=body, headers=headers)

    await assert_error(response, 415, "Send the body as application/json")
    assert "Set-Cookie" not in response.headers
    assert await account_count(api) == 1


@pytest.mark.parametrize(
    "json_type", ["application/json; charset=utf-8", "Application/JSON", "application/ld+json"]
)
async def test_a_cross_site_text_plain_registration_creates_no_account_and_json_does(
    api: Gallery, json_type: str
) -> None:
    body = b'{"username": "mallory", "password": "12345678"}'

    forged = await api.client.post("/api/auth/register", data=body, headers=CROSS_SITE)

    await assert_error(forged, 415, "Send the body as application/json")
    assert await account_count(api) == 0
    sent_as_json = {"Content-Type": json_type}
    registered = await api.client.post("/api/auth/register", data=body, headers=sent_as_json)
    assert (await expect(registered, 201))["user"]["id"] == "mallory"


async def test_an_authenticated_json_route_refuses_text_plain_too(api: Gallery) -> None:
    body = b'{"filename": "my-video.mp4", "contentType": "video/mp4"}'

    response = await api.request(
        "POST", "/api/upload/generate-url", ALICE, data=body, headers={"Content-Type": "text/plain"}
    )

    await assert_error(response, 415, "Send the body as application/json")
