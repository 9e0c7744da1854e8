"""Shared pieces of the gallery HTTP tests: a served app, tokens for three users, uploads.

Fixtures are defined as `<name>_fixture` functions registered under `<name>`: a test module
imports the functions it needs (pytest finds them in its namespace) without its test arguments
shadowing the imported names.
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from tests.fixtures.config import MakeConfig
from videoforge import keys
from videoforge.app import Role, create_app
from videoforge.auth.tokens import LocalAuthenticator
from videoforge.config import Config
from videoforge.storage import Storage

Client = TestClient[web.Request, web.Application]

ALICE = "alice"
BOB = "bob"
ADMIN = "root"  # the only user whose tokens carry the admin group

DATA = bytes(range(256)) * 16  # 4 KiB that no off-by-one slice could match by accident

# `gallery/{userId}/{epochMillis}-{safeName}`
KEY_PATTERN = re.compile(r"gallery/(?P<user>[^/]+)/(?P<millis>\d{13})-(?P<name>[^/]+)")
SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")

FULL_RECORD_KEYS = frozenset(
    {
        "id",
        "userId",
        "title",
        "description",
        "s3Key",
        "status",
        "visibility",
        "views",
        "fileSize",
        "contentType",
        "duration",
        "resolution",
        "width",
        "height",
        "videoCodec",
        "audioCodec",
        "thumbnailUrl",
        "previewUrl",
        "jobId",
        "createdAt",
        "updatedAt",
    }
)
LIST_ITEM_KEYS = frozenset(
    {
        "id",
        "userId",
        "title",
        "description",
        "visibility",
        "status",
        "duration",
        "resolution",
        "views",
        "thumbnailUrl",
        "previewUrl",
        "createdAt",
    }
)


def signed(url: str) -> URL:
    """A presigned URL as is: re-quoting it would break the signature."""
    return URL(url, encoded=True)


async def expect(response: aiohttp.ClientResponse, status: int) -> Any:
    """The JSON body of `response`, after checking its status (the body is shown if not)."""
    text = await response.text()
    assert response.status == status, f"expected {status}, got {response.status}: {text}"
    return await response.json()


def assert_full_record(record: dict[str, Any]) -> None:
    """`record` has the contract's full shape: every key, camelCase, UTC timestamps."""
    assert set(record) >= FULL_RECORD_KEYS, f"missing {sorted(FULL_RECORD_KEYS - set(record))}"
    assert isinstance(record["id"], int) and record["id"] > 0
    assert record["status"] in ("uploaded", "processing", "ready", "failed")
    assert record["visibility"] in ("public", "unlisted", "private")
    assert ISO_UTC.fullmatch(record["createdAt"]), record["createdAt"]
    assert ISO_UTC.fullmatch(record["updatedAt"]), record["updatedAt"]


def assert_list_item(item: dict[str, Any]) -> None:
    """`item` has the contract's list-item shape."""
    assert set(item) >= LIST_ITEM_KEYS, f"missing {sorted(LIST_ITEM_KEYS - set(item))}"
    assert isinstance(item["id"], int) and item["id"] > 0
    assert ISO_UTC.fullmatch(item["createdAt"]), item["createdAt"]


@dataclass
class Gallery:
    """The served app, seen through its HTTP API, as any of the test users."""

    client: Client
    http: aiohttp.ClientSession
    config: Config
    authenticator: LocalAuthenticator

    @property
    def app(self) -> web.Application:
        app = self.client.app
        assert app is not None
        return app

    @property
    def storage(self) -> Storage:
        return self.app[keys.STORAGE]

    def headers(self, user: str | None) -> dict[str, str]:
        """The Authorization header for `user` (admin if `ADMIN`), none for anonymous."""
        if user is None:
            return {}
        token = self.authenticator.issue(user, admin=user == ADMIN)
        return {"Authorization": f"Bearer {token}"}

    async def request(
        self, method: str, path: str, user: str | None = None, **kwargs: Any
    ) -> aiohttp.ClientResponse:
        headers = {**self.headers(user), **kwargs.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kwargs)

    # --- upload ---------------------------------------------------------------------------

    async def generate_url(
        self, user: str | None, body: dict[str, Any] | None = None
    ) -> aiohttp.ClientResponse:
        payload = {"filename": "my-video.mp4", "contentType": "video/mp4"} if body is None else body
        return await self.request("POST", "/api/upload/generate-url", user, json=payload)

    async def put_object(self, upload_url: str, data: bytes, content_type: str) -> None:
        """PUT `data` to a presigned upload URL, as a browser would (straight to storage)."""
        headers = {"Content-Type": content_type}
        body = io.BytesIO(data)  # aiohttp warns about large raw bytes bodies
        async with self.http.put(signed(upload_url), data=body, headers=headers) as response:
            text = await response.text()
            assert response.status in (200, 201, 204), f"{response.status}: {text}"

    async def get_object(
        self, url: str, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """GET a presigned URL: (status, body)."""
        async with self.http.get(signed(url), headers=headers or {}) as response:
            return response.status, await response.read()

    async def confirm(self, user: str | None, body: dict[str, Any]) -> aiohttp.ClientResponse:
        return await self.request("POST", "/api/upload/confirm", user, json=body)

    async def uploaded_key(
        self, user: str, data: bytes = DATA, filename: str = "my-video.mp4"
    ) -> str:
        """Generate an upload URL for `user` and PUT `data` to it; the key, not yet confirmed."""
        body = {"filename": filename, "contentType": "video/mp4", "fileSize": len(data)}
        ticket = await expect(await self.generate_url(user, body), 200)
        await self.put_object(ticket["uploadUrl"], data, "video/mp4")
        key: str = ticket["s3Key"]
        return key

    async def upload(
        self,
        user: str,
        title: str = "My Amazing Video",
        visibility: str = "public",
        description: str | None = None,
        data: bytes = DATA,
    ) -> dict[str, Any]:
        """generate-url, PUT, confirm: the confirmed record."""
        key = await self.uploaded_key(user, data)
        body: dict[str, Any] = {"s3Key": key, "title": title, "visibility": visibility}
        if description is not None:
            body["description"] = description
        record: dict[str, Any] = await expect(await self.confirm(user, body), 201)
        return record

    # --- browse ---------------------------------------------------------------------------

    async def list_videos(self, user: str | None = None, /, **query: Any) -> aiohttp.ClientResponse:
        params = {name: str(value) for name, value in query.items()}
        return await self.request("GET", "/api/gallery/videos", user, params=params)

    async def listing(self, user: str | None = None, /, **query: Any) -> dict[str, Any]:
        """A successful list response's body."""
        body: dict[str, Any] = await expect(await self.list_videos(user, **query), 200)
        return body

    async def titles(self, user: str | None = None, /, **query: Any) -> set[str]:
        """The titles a (single-page) list shows to `user`; its total must agree."""
        body = await self.listing(user, limit=100, **query)
        titles = [item["title"] for item in body["videos"]]
        assert body["pagination"]["total"] == len(titles), body["pagination"]
        return set(titles)

    async def details(self, video_id: Any, user: str | None = None) -> aiohttp.ClientResponse:
        return await self.request("GET", f"/api/gallery/videos/{video_id}", user)

    async def stream(self, video_id: Any, user: str | None = None) -> aiohttp.ClientResponse:
        return await self.request("GET", f"/api/gallery/videos/{video_id}/stream", user)

    async def views(self, video_id: int) -> int:
        """The current view count: read through details (as the admin), not counting that read."""
        record = await expect(await self.details(video_id, ADMIN), 200)
        return int(record["views"]) - 1

    # --- manage ---------------------------------------------------------------------------

    async def update(
        self, video_id: Any, user: str | None, body: dict[str, Any]
    ) -> aiohttp.ClientResponse:
        return await self.request("PUT", f"/api/gallery/videos/{video_id}", user, json=body)

    async def delete(self, video_id: Any, user: str | None) -> aiohttp.ClientResponse:
        return await self.request("DELETE", f"/api/gallery/videos/{video_id}", user)


StartGallery = Callable[..., Awaitable[Gallery]]


@pytest.fixture(name="start_gallery")
async def start_gallery_fixture(
    make_config: MakeConfig, aiohttp_server: Any, aiohttp_client: Any
) -> AsyncIterator[StartGallery]:
    """Serve `create_app` on the config's own port, so signed local URLs point back at it.

    `make_config` comes first so that its database outlives the servers: teardown runs in
    reverse, and a pool whose database is dropped under it logs reconnection failures.
    """
    async with aiohttp.ClientSession() as http:

        async def start(config: Config | None = None, role: Role = "all") -> Gallery:
            config = config or make_config()
            app = create_app(config, role)
            server = await aiohttp_server(app, port=config.server.port)
            client: Client = await aiohttp_client(server)
            # After startup: the app has created the token secret this authenticator reads.
            return Gallery(client, http, config, LocalAuthenticator(config))

        yield start


@pytest.fixture(name="gallery")
async def gallery_fixture(start_gallery: StartGallery) -> Gallery:
    """The app on local storage and the in-process cache."""
    return await start_gallery()


@pytest.fixture(name="cache_settings", params=["memory", "redis"])
def cache_settings_fixture(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The `[cache]` section for each backend (redis is the session's real server, emptied)."""
    if request.param == "redis":
        return {"url": request.getfixturevalue("redis_url")}
    return {}


@pytest.fixture(name="cached_gallery")
async def cached_gallery_fixture(
    start_gallery: StartGallery, make_config: MakeConfig, cache_settings: dict[str, Any]
) -> Gallery:
    """The app on local storage, once per cache backend."""
    return await start_gallery(make_config(cache=cache_settings))
