"""The wired application: errors, request ids, health, local accounts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.errors_support import assert_error
from tests.fixtures.config import MakeConfig
from tests.support import free_port
from videoforge.app import create_app
from videoforge.auth.tokens import LocalAuthenticator
from videoforge.config import Config

Client = TestClient[web.Request, web.Application]
StartApp = Callable[..., Awaitable[Client]]


@pytest.fixture
def start_app(aiohttp_server: Any, aiohttp_client: Any, make_config: MakeConfig) -> StartApp:
    """Serve `create_app` on the config's own port, so signed URLs point back at it."""

    async def start(
        config: Config | None = None, role: str = "all", extra: web.RouteTableDef | None = None
    ) -> Client:
        config = config or make_config()
        app = create_app(config, role)  # type: ignore[arg-type]
        if extra is not None:
            app.add_routes(extra)
        server = await aiohttp_server(app, port=config.server.port)
        client: Client = await aiohttp_client(server)
        return client

    return start


async def test_health_with_every_component_up_is_200(start_app: StartApp) -> None:
    client = await start_app()
    response = await client.get("/api/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok"
    assert body["role"] == "all"
    assert set(body["components"]) >= {"database", "storage", "cache", "ffmpeg"}
    assert all(c["status"] == "ok" for c in body["components"].values())


async def test_health_with_cache_down_is_503_and_names_it(
    start_app: StartApp, make_config: MakeConfig
) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    client = await start_app(make_config(cache={"url": dead_redis}))
    response = await client.get("/api/health")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "unavailable"
    assert body["components"]["cache"]["status"] == "down"
    assert body["components"]["database"]["status"] == "ok"


async def test_worker_role_serves_health_but_not_the_api(start_app: StartApp) -> None:
    client = await start_app(role="worker")
    assert (await client.get("/api/health")).status == 200
    response = await client.post("/api/auth/login", json={"username": "a", "password": "b"})
    await assert_error(response, 404, "Not found")


async def test_unknown_route_is_json_404(start_app: StartApp) -> None:
    client = await start_app()
    response = await client.get("/api/nope")
    assert response.status == 404
    assert await response.json() == {"error": "Not found"}


async def test_wrong_method_is_json_405_with_allow_header(start_app: StartApp) -> None:
    client = await start_app()
    response = await client.delete("/api/health")
    assert response.status == 405
    assert await response.json() == {"error": "Method not allowed"}
    assert "GET" in response.headers["Allow"]


async def test_crashing_handler_is_500_without_traceback(start_app: StartApp) -> None:
    extra = web.RouteTableDef()

    @extra.get("/api/test-crash")
    async def crash(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals /etc/passwd")

    client = await start_app(extra=extra)
    response = await client.get("/api/test-crash")
    assert response.status == 500
    text = await response.text()
    assert "secret" not in text and "Traceback" not in text
    assert await response.json() == {"error": "Internal server error"}


async def test_request_id_is_echoed_when_safe_and_replaced_when_not(start_app: StartApp) -> None:
    client = await start_app()
    echoed = await client.get("/api/health", headers={"X-Request-Id": "abc-123"})
    assert echoed.headers["X-Request-Id"] == "abc-123"
    replaced = await client.get("/api/health", headers={"X-Request-Id": "bad id\tx"})
    assert replaced.headers["X-Request-Id"] != "bad id\tx"
    assert len(replaced.headers["X-Request-Id"]) == 32
    missing = await client.get("/api/nope")
    assert missing.headers["X-Request-Id"]


async def test_body_over_limit_is_413(start_app: StartApp, make_config: MakeConfig) -> None:
    client = await start_app(make_config(server={"max_body_bytes": 1024}))
    response = await client.post(
        "/api/auth/register",
        data=b'{"username": "' + b"a" * 4096 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 413
    assert await response.json() == {"error": "Request body too large"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "Request body is required"),
        (b"{not json", "Request body is not valid JSON"),
        (b"[1, 2]", "Request body must be a JSON object"),
        (b"\xff\xfe", "Request body is not valid JSON"),
    ],
)
async def test_malformed_json_body_is_400(start_app: StartApp, body: bytes, message: str) -> None:
    client = await start_app()
    response = await client.post(
        "/api/auth/register", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert await response.json() == {"error": message}


async def test_register_then_login_returns_working_tokens(
    start_app: StartApp, make_config: MakeConfig
) -> None:
    config = make_config()
    client = await start_app(config)
    credentials = {"username": "alice", "password": "correct horse battery"}
    registered = await client.post("/api/auth/register", json=credentials)
    assert registered.status == 201
    body = await registered.json()
    assert body["user"]["username"] == "alice"
    assert body["user"]["isAdmin"] is False

    logged_in = await client.post("/api/auth/login", json=credentials)
    assert logged_in.status == 200
    token = (await logged_in.json())["token"]
    principal = await LocalAuthenticator(config).verify(token)
    assert principal.user_id == body["user"]["id"]


async def test_register_with_taken_username_is_409(start_app: StartApp) -> None:
    client = await start_app()
    credentials = {"username": "bob", "password": "long enough pw"}
    assert (await client.post("/api/auth/register", json=credentials)).status == 201
    taken = await client.post("/api/auth/register", json={**credentials, "username": "BOB"})
    assert taken.status == 409
    assert await taken.json() == {"error": "Username already taken"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"username": "ab", "password": "long enough pw"}, "username"),
        ({"username": "../etc", "password": "long enough pw"}, "username"),
        ({"username": "carol", "password": "short"}, "password"),
        ({"username": "carol"}, "password"),
        ({"username": "carol", "password": "long enough pw", "isAdmin": True}, "isAdmin"),
    ],
)
async def test_register_with_invalid_fields_is_400_with_details(
    start_app: StartApp, payload: dict[str, Any], field: str
) -> None:
    client = await start_app()
    response = await client.post("/api/auth/register", json=payload)
    assert response.status == 400
    body = await response.json()
    assert field in body["details"]
    assert field.lower() in body["error"].lower()


async def test_login_with_wrong_password_or_unknown_user_is_401(start_app: StartApp) -> None:
    client = await start_app()
    await client.post("/api/auth/register", json={"username": "dave", "password": "right password"})
    wrong = await client.post("/api/auth/login", json={"username": "dave", "password": "wrong one"})
    unknown = await client.post(
        "/api/auth/login", json={"username": "erin", "password": "whatever"}
    )
    for response in (wrong, unknown):
        assert response.status == 401
        assert await response.json() == {"error": "Invalid username or password"}


async def test_registration_closed_by_config_is_403(
    start_app: StartApp, make_config: MakeConfig
) -> None:
    client = await start_app(make_config(auth={"allow_registration": False}))
    response = await client.post(
        "/api/auth/register", json={"username": "fred", "password": "x" * 9}
    )
    await assert_error(response, 403, "Registration is closed")
