"""Browser sessions over HTTP: the token moves into an HttpOnly SameSite cookie, reads work with
it, state changes need the CSRF token, and nothing else signs a browser in."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.errors_support import assert_error
from tests.gallery_support import (
    ALICE,
    Gallery,
    expect,
)
from videoforge.auth.sessions import CSRF_HEADER, FETCH_SITE_HEADER, SESSION_COOKIE


async def start_session(gallery: Gallery, token: str) -> tuple[aiohttp.ClientResponse, Any]:
    response = await gallery.request("POST", "/api/auth/session", json={"token": token})
    return response, await response.json()


async def signed_in(gallery: Gallery, user: str = ALICE) -> str:
    """Sign the test client's cookie jar in as `user`; the CSRF token."""
    response, body = await start_session(gallery, gallery.authenticator.issue(user))
    assert response.status == 200, body
    csrf: str = body["csrfToken"]
    return csrf


async def test_session_cookie_is_httponly_samesite_and_ends_with_the_token(
    gallery: Gallery,
) -> None:
    token = gallery.authenticator.issue(ALICE, ttl=600)
    response, body = await start_session(gallery, token)

    assert body["user"] == {"id": ALICE, "isAdmin": False}
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie.value == token
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert 590 <= int(cookie["max-age"]) <= 600


async def test_session_cookie_authenticates_reads(gallery: Gallery) -> None:
    await signed_in(gallery)
    me = await expect(await gallery.client.get("/api/auth/me"), 200)
    assert me["user"]["id"] == ALICE


async def test_state_change_with_the_cookie_needs_the_csrf_token(gallery: Gallery) -> None:
    csrf = await signed_in(gallery)
    body = {"filename": "a.mp4", "contentType": "video/mp4"}

    refused = await gallery.client.post("/api/upload/generate-url", json=body)
    assert (await expect(refused, 403))["error"] == "Missing or invalid CSRF token"
    forged = await gallery.client.post(
        "/api/upload/generate-url", json=body, headers={CSRF_HEADER: "0" * 64}
    )
    await assert_error(forged, 403, "Missing or invalid CSRF token")

    allowed = await gallery.client.post(
        "/api/upload/generate-url", json=body, headers={CSRF_HEADER: csrf}
    )
    await expect(allowed, 200)


async def test_state_change_with_the_cookie_from_our_own_origin_needs_no_csrf_token(
    gallery: Gallery,
) -> None:
    # What Uppy's S3 plugin sends: the browser's Fetch Metadata, none of our headers.
    await signed_in(gallery)
    body = {"filename": "a.mp4", "type": "video/mp4"}
    response = await gallery.client.post(
        "/api/uploads/s3/multipart", json=body, headers={FETCH_SITE_HEADER: "same-origin"}
    )
    assert set(await expect(response, 200)) == {"key", "uploadId"}


@pytest.mark.parametrize("site", ["cross-site", "same-site", "none", "Same-Origin", ""])
async def test_state_change_with_the_cookie_from_elsewhere_needs_the_csrf_token(
    gallery: Gallery, site: str
) -> None:
    await signed_in(gallery)
    body = {"filename": "a.mp4", "type": "video/mp4"}
    response = await gallery.client.post(
        "/api/uploads/s3/multipart", json=body, headers={FETCH_SITE_HEADER: site}
    )
    await assert_error(response, 403, "Missing or invalid CSRF token")


async def test_state_change_with_the_cookie_and_no_fetch_metadata_needs_the_csrf_token(
    gallery: Gallery,
) -> None:
    await signed_in(gallery)
    body = {"filename": "a.mp4", "type": "video/mp4"}
    response = await gallery.client.post("/api/uploads/s3/multipart", json=body)
    await assert_error(response, 403, "Missing or invalid CSRF token")


async def test_bearer_header_needs_no_csrf_token_even_beside_a_cookie(gallery: Gallery) -> None:
    await signed_in(gallery)
    body = {"filename": "a.mp4", "contentType": "video/mp4"}
    response = await gallery.request("POST", "/api/upload/generate-url", ALICE, json=body)
    await expect(response, 200)


async def test_session_refuses_a_bad_token_and_a_non_json_body(gallery: Gallery) -> None:
    response, body = await start_session(gallery, "not-a-token")
    assert response.status == 401 and body == {"error": "Invalid token"}
    assert SESSION_COOKIE not in response.cookies

    # A form on another site can post text/plain, never application/json without a preflight.
    token = gallery.authenticator.issue(ALICE)
    forged = await gallery.client.post(
        "/api/auth/session", data=f'{{"token": "{token}"}}', headers={"Content-Type": "text/plain"}
    )
    assert (await expect(forged, 415))["error"] == "Send the body as application/json"
    assert SESSION_COOKIE not in forged.cookies


async def test_an_expired_cookie_is_401_on_the_api_and_signed_out_on_pages(
    gallery: Gallery,
) -> None:
    expired = gallery.authenticator.issue(ALICE, ttl=-60)
    gallery.client.session.cookie_jar.update_cookies({SESSION_COOKIE: expired})

    await assert_error(await gallery.client.get("/api/auth/me"), 401, "Token expired")
    page = await gallery.client.get("/")
    assert page.status == 200
    assert 'href="/login"' in await page.text()
    assert page.cookies[SESSION_COOKIE].value == ""  # cleared


async def test_signing_out_clears_the_cookie(gallery: Gallery) -> None:
    await signed_in(gallery)
    response = await gallery.client.delete("/api/auth/session")
    await expect(response, 200)
    assert response.cookies[SESSION_COOKIE].value == ""
    await assert_error(await gallery.client.get("/api/auth/me"), 401, "Authentication required")
