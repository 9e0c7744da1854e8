"""Storage tests' support: a minimal app serving a storage backend, and (as a pytest plugin) a
`storage` fixture for each backend, the local one and S3 on SeaweedFS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support import free_port
from videoforge import keys
from videoforge.config import Config, build_config
from videoforge.errors import VideoforgeError
from videoforge.storage import Storage, storage_ctx
from videoforge.web.media import add_media_routes

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ServerFactory = Callable[..., Awaitable[TestServer]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """What the app-wide middleware does: a `VideoforgeError` becomes `{"error": ...}`."""
    try:
        return await handler(request)
    except VideoforgeError as exc:
        return web.json_response(exc.to_json(), status=exc.status, headers=exc.headers())


def storage_config(data_dir: Path, port: int, storage: dict[str, Any]) -> Config:
    """A config whose public URL is the test server's, known before it starts."""
    server = {"data_dir": str(data_dir), "public_url": f"http://127.0.0.1:{port}"}
    return build_config({"server": server, "storage": storage})


async def serve_storage(aiohttp_server: ServerFactory, config: Config, port: int) -> Storage:
    """Start an app with `storage_ctx` and the storage routes; return its storage."""
    app = web.Application(middlewares=[error_middleware])
    app[keys.CONFIG] = config
    app.cleanup_ctx.append(storage_ctx)
    add_media_routes(app, config)
    await aiohttp_server(app, port=port)
    return app[keys.STORAGE]


@pytest.fixture(params=["local", "s3"])
def storage_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The `[storage]` section for each backend (s3 brings up SeaweedFS)."""
    if request.param == "s3":
        settings: dict[str, Any] = request.getfixturevalue("s3_storage_settings")
        return settings
    return {"backend": "local"}


@pytest.fixture
async def storage(
    storage_settings: dict[str, Any], tmp_path: Path, aiohttp_server: ServerFactory
) -> Storage:
    port = free_port()
    config = storage_config(tmp_path / "data", port, storage_settings)
    return await serve_storage(aiohttp_server, config, port)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A scratch directory outside the storage's data dir."""
    path = tmp_path / "work"
    path.mkdir()
    return path
