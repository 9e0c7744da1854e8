"""Hostile input: whatever a client sends, the answer is a 4xx JSON error, never a crash.

Every untrusted string or structure that could reach a decoder or the database is sent to each
route that reads it: JSON nested too deeply, numbers too long to parse or too large for a column,
lone surrogates and NUL characters (PostgreSQL's text takes neither), non-UTF-8 bytes in the
headers we read, and NUL in query strings and paths.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest
from yarl import URL

from tests.errors_support import assert_error
from tests.gallery_support import (
    ADMIN,
    ALICE,
    Gallery,
)
from videoforge.auth.sessions import SESSION_COOKIE

DEEP = 1000  # levels: Python's json gives up (RecursionError) around here


@dataclass(frozen=True)
class BodyRoute:
    method: str
    path: str
    user: str | None
    body: dict[str, Any]

    def url(self, video_id: int) -> str:
        return self.path.format(id=video_id)


BODY_ROUTES = {
    "register": BodyRoute(
        "POST", "/api/auth/register", None, {"username": "carol", "password": "correct horse"}
    ),
    "login": BodyRoute(
        "POST", "/api/auth/login", None, {"username": "carol", "password": "correct horse"}
    ),
    "session": BodyRoute("POST", "/api/auth/session", None, {"token": "abc"}),
    "generate-url": BodyRoute(
        "POST",
        "/api/upload/generate-url",
        ALICE,
        {"filename": "a.mp4", "contentType": "video/mp4", "fileSize": 10},
    ),
    "confirm": BodyRoute(
        "POST", "/api/upload/confirm", ALICE, {"s3Key": "{key}", "title": "t", "description": "d"}
    ),
    "update": BodyRoute(
        "PUT", "/api/gallery/videos/{id}", ALICE, {"title": "t", "description": "d"}
    ),
    "create-job": BodyRoute("POST", "/api/jobs", ALICE, {"inputSource": "{key}"}),
}

# Whole bodies that no JSON object route can take.
HOSTILE_BODIES = {
    "nested-objects": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "nested-arrays": b'{"a":' + b"[" * DEEP + b"]" * DEEP + b"}",
    "long-integer": b'{"a": ' + b"9" * 5000 + b"}",
    "not-utf8": b'{"a": "\xff\xfe"}',
    "nul-in-name": b'{"a\\u0000": 1}',
    "surrogate-in-name": b'{"a\\ud800": 1}',
}

# String values that the database cannot store.
HOSTILE_STRINGS = {
    "lone-surrogate": "ab\\ud800cd",
    "low-surrogate": "\\udc00",
    "nul": "ab\\u0000cd",
}


def _string_cases() -> list[Any]:
    return [
        pytest.param(route, field, value, id=f"{route}-{field}-{name}")
        for route, spec in BODY_ROUTES.items()
        for field in spec.body
        if isinstance(spec.body[field], str)
        for name, value in HOSTILE_STRINGS.items()
    ]


@pytest.fixture(name="setup")
async def setup_fixture(gallery: Gallery) -> dict[str, Any]:
    """Alice's uploaded (unconfirmed) key and one confirmed video of hers."""
    video = await gallery.upload(ALICE)
    key = await gallery.uploaded_key(ALICE)
    return {
        "key": key,
        "video_id": video["id"],
        "media_url": await gallery.storage.presign_get(key, 60),
    }


def no_crash_logged(caplog: pytest.LogCaptureFixture) -> None:
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not crashes, [r.getMessage() for r in crashes]


async def expect_client_error(response: Any, statuses: tuple[int, ...] = (400,)) -> str:
    text = await response.text()
    assert response.status in statuses, f"{response.status}: {text}"
    body = json.loads(text)
    assert isinstance(body["error"], str) and body["error"]
    return str(body["error"])


async def send_body(gallery: Gallery, spec: BodyRoute, setup: dict[str, Any], raw: bytes) -> Any:
    headers = {"Content-Type": "application/json"}
    return await gallery.request(
        spec.method, spec.url(setup["video_id"]), spec.user, data=raw, headers=headers
    )


def _raw_body(spec: BodyRoute, setup: dict[str, Any], field: str, value: str) -> bytes:
    """The route's valid body with `value` (JSON escapes as written) in `field`."""
    body = {name: v.format(key=setup["key"]) if isinstance(v, str) else v
            for name, v in spec.body.items()}  # fmt: skip
    body[field] = "@HOSTILE@"
    return json.dumps(body).replace('"@HOSTILE@"', f'"{value}"').encode()


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize("body", HOSTILE_BODIES)
async def test_hostile_json_body_is_refused_with_400(
    gallery: Gallery,
    setup: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    route: str,
    body: str,
) -> None:
    response = await send_body(gallery, BODY_ROUTES[route], setup, HOSTILE_BODIES[body])
    await expect_client_error(response)
    no_crash_logged(caplog)


@pytest.mark.parametrize(("route", "field", "value"), _string_cases())
async def test_string_the_database_cannot_store_is_refused_with_400(
    gallery: Gallery,
    setup: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    route: str,
    field: str,
    value: str,
) -> None:
    spec = BODY_ROUTES[route]
    response = await send_body(gallery, spec, setup, _raw_body(spec, setup, field, value))
    await expect_client_error(response)
    no_crash_logged(caplog)


@pytest.mark.parametrize("size", [2**63, 10**30])
async def test_file_size_beyond_any_column_is_refused(
    gallery: Gallery, caplog: pytest.LogCaptureFixture, size: int
) -> None:
    body = {"filename": "a.mp4", "contentType": "video/mp4", "fileSize": size}
    await expect_client_error(await gallery.generate_url(ALICE, body), (400, 413))
    no_crash_logged(caplog)


QUERY_CASES = {
    "list-search-nul": ("/api/gallery/videos?search=a%00b", None),
    "list-page-huge": ("/api/gallery/videos?page=99999999999999999999", None),
    "list-page-long": ("/api/gallery/videos?page=" + "9" * 5000, None),
    "list-limit-long": ("/api/gallery/videos?limit=" + "9" * 5000, None),
    "jobs-page-huge": ("/api/jobs?page=99999999999999999999", ALICE),
    "admin-jobs-page-huge": ("/api/jobs/admin/all?page=99999999999999999999", ADMIN),
    "admin-jobs-user-nul": ("/api/jobs/admin/all?userId=a%00b", ADMIN),
    "usage-page-huge": ("/api/admin/storage/usage?page=99999999999999999999", ADMIN),
    "stream-quality-nul": ("/api/gallery/videos/{id}/stream?quality=%00", None),
    "video-id-nul": ("/api/gallery/videos/1%00", None),
    "hls-token-nul": ("/api/hls/a%00b/master.m3u8", None),
    "media-key-nul": ("/media/gallery/a%00b.mp4?expires=1&signature=x", None),
    "media-expires-long": ("/media/gallery/a.mp4?expires=" + "9" * 5000 + "&signature=x", None),
    "hls-job-long": ("/api/hls/" + "9" * 5000 + ".1.x/master.m3u8", None),
    "job-id-long": ("/api/jobs/" + "9" * 5000, ALICE),
    "video-id-long": ("/api/gallery/videos/" + "9" * 5000, None),
    "page-gallery-search-nul": ("/?search=a%00b", None),
    "page-admin-user-nul": ("/admin?userId=a%00b", ADMIN),
    "page-login-next-nul": ("/login?next=/a%00b", None),
}


@pytest.mark.parametrize("case", QUERY_CASES)
async def test_hostile_query_or_path_is_refused_not_crashed(
    gallery: Gallery, setup: dict[str, Any], caplog: pytest.LogCaptureFixture, case: str
) -> None:
    path, user = QUERY_CASES[case]
    response = await gallery.request("GET", path.format(id=setup["video_id"]), user)
    text = await response.text()
    assert response.status < 500, f"{response.status}: {text}"
    no_crash_logged(caplog)


async def test_upload_url_with_a_size_of_thousands_of_digits_is_refused_not_crashed(
    gallery: Gallery, caplog: pytest.LogCaptureFixture
) -> None:
    url = "/media/gallery/alice/a.mp4?expires=1&signature=x&size=" + "9" * 5000
    response = await gallery.client.put(url, data=b"x", headers={"Content-Type": "video/mp4"})
    await assert_error(response, 403, "Invalid or missing URL signature")
    no_crash_logged(caplog)


async def raw_request(gallery: Gallery, head: bytes) -> tuple[int, bytes]:
    """Send a request written byte by byte (headers no client library would send)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gallery.config.server.port)
    try:
        writer.write(head + b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


HEADER_CASES = {
    "bearer-not-utf8": (b"GET /api/auth/me", b"Authorization: Bearer \xff\xfe", 401),
    "bearer-not-ascii": (b"GET /api/auth/me", "Authorization: Bearer é".encode(), 401),
    "cookie-not-utf8": (b"GET /api/auth/me", b"Cookie: vf_session=\xff\xfe", 401),
    "cookie-not-ascii": (b"GET /api/auth/me", f"Cookie: {SESSION_COOKIE}=é".encode(), 401),
}


@pytest.mark.parametrize("case", HEADER_CASES)
async def test_undecodable_credentials_are_401(
    gallery: Gallery, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    request_line, header, status = HEADER_CASES[case]
    got, body = await raw_request(gallery, request_line + b" HTTP/1.1\r\n" + header + b"\r\n")
    assert got == status, body
    assert json.loads(body)["error"]
    no_crash_logged(caplog)


@pytest.mark.parametrize("csrf", [b"\xff\xfe", "é".encode()])
async def test_undecodable_csrf_token_is_403(
    gallery: Gallery, setup: dict[str, Any], caplog: pytest.LogCaptureFixture, csrf: bytes
) -> None:
    token = gallery.authenticator.issue(ALICE).encode()
    head = (
        f"DELETE /api/gallery/videos/{setup['video_id']} HTTP/1.1\r\n".encode()
        + f"Cookie: {SESSION_COOKIE}=".encode()
        + token
        + b"\r\nX-CSRF-Token: "
        + csrf
        + b"\r\n"
    )
    got, body = await raw_request(gallery, head)
    assert got == 403, body
    assert json.loads(body)["error"] == "Missing or invalid CSRF token"
    no_crash_logged(caplog)


async def test_page_with_undecodable_cookie_is_signed_out(
    gallery: Gallery, caplog: pytest.LogCaptureFixture
) -> None:
    got, body = await raw_request(gallery, b"GET / HTTP/1.1\r\nCookie: vf_session=\xff\xfe\r\n")
    assert got == 200, body
    no_crash_logged(caplog)


MEDIA_HEADERS = {
    "range-not-utf8": b"Range: bytes=\xff-\xfe",
    "range-huge": b"Range: bytes=" + b"9" * 5000 + b"-",
    "if-none-match-not-utf8": b'If-None-Match: "\xff"',
    "if-modified-since-not-utf8": b"If-Modified-Since: \xff\xfe",
}


@pytest.mark.parametrize("case", MEDIA_HEADERS)
async def test_undecodable_media_headers_are_not_a_crash(
    gallery: Gallery, setup: dict[str, Any], caplog: pytest.LogCaptureFixture, case: str
) -> None:
    path = URL(setup["media_url"], encoded=True).raw_path_qs.encode()
    got, body = await raw_request(
        gallery, b"GET " + path + b" HTTP/1.1\r\n" + MEDIA_HEADERS[case] + b"\r\n"
    )
    assert got < 500, body
    no_crash_logged(caplog)
