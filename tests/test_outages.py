"""Outages: with PostgreSQL or the S3 store down, routes that need them answer 503 with
`Retry-After`, the log says so in one line a second (no traceback per request), and the routes
recover when the service comes back.

The PostgreSQL here is a server of the test's own (the session's is shared), stopped with a fast
shutdown (SIGINT to the postmaster) under the running app, then started again on the same data.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.fixtures.config import MakeConfig
from tests.fixtures.s3 import S3Server, run_seaweedfs
from tests.gallery_support import ADMIN, ALICE, DATA, signed
from videoforge.app import create_app
from videoforge.auth.tokens import LocalAuthenticator
from videoforge.db.embedded import EmbeddedServer, create_database, start_server
from videoforge.errors import BadRequest, ServiceUnavailable
from videoforge.web.failures import ThrottledLog, classify

OUTAGE_BODY = {"error": "Service temporarily unavailable"}
MIDDLEWARE_LOGGER = "videoforge.web.middlewares"


class StoppablePostgres:
    """An embedded PostgreSQL of this test's own, which the test may stop and start again."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self.server: EmbeddedServer = start_server(pgdata)

    def uri(self, database: str) -> str:
        return self.server.uri(database)

    def stop(self) -> None:
        """A fast shutdown (what `pg_ctl -m fast stop` does): sessions are cut off at once."""
        pid = self.server.pid
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while (self.pgdata / "postmaster.pid").exists():
            assert time.monotonic() < deadline, "PostgreSQL did not stop"
            time.sleep(0.05)

    def start(self) -> None:
        self.server.stop()  # the wheel's handle: it finds the server gone
        self.server = start_server(self.pgdata)


@pytest.fixture
async def own_postgres(embedded_data_dir: Path) -> AsyncIterator[StoppablePostgres]:
    server = await asyncio.to_thread(StoppablePostgres, embedded_data_dir / "pg")
    try:
        yield server
    finally:
        await asyncio.to_thread(server.server.stop)


@dataclass
class Served:
    client: TestClient[Any, Any]
    tokens: LocalAuthenticator

    async def call(self, method: str, path: str, user: str | None = None, **kw: Any) -> Any:
        headers = {}
        if user is not None:
            token = self.tokens.issue(user, admin=user == ADMIN)
            headers["Authorization"] = f"Bearer {token}"
        return await self.client.request(method, path, headers=headers, **kw)


async def serve(aiohttp_client: Any, config: Any) -> Served:
    # The API alone: the worker pool's own reaction to an outage is not what this is about.
    client = await aiohttp_client(create_app(config, "api"))
    return Served(client, LocalAuthenticator(config))


def database_routes(round_: int) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    """Routes that need the database; `round_` varies the listing so no cache answers it."""
    upload = {"filename": "a.mp4", "contentType": "video/mp4"}
    login = {"username": "nobody", "password": "not a password"}
    return [
        ("GET", f"/api/gallery/videos?page={round_ + 1}", None, {}),
        ("GET", "/api/gallery/videos/1", None, {}),
        ("GET", "/api/jobs", ALICE, {}),
        ("POST", "/api/upload/generate-url", ALICE, {"json": upload}),
        ("POST", "/api/auth/login", None, {"json": login}),
        ("GET", "/api/jobs/admin/stats", ADMIN, {}),
        ("GET", f"/?page={round_ + 1}", None, {}),
    ]


async def assert_outage_answer(response: aiohttp.ClientResponse) -> None:
    text = await response.text()
    assert response.status == 503, f"{response.method} {response.url}: {response.status} {text}"
    assert int(response.headers["Retry-After"]) >= 1
    assert await response.json() == OUTAGE_BODY


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == MIDDLEWARE_LOGGER]


async def test_database_outage_answers_503_logs_a_line_a_second_and_recovers(
    own_postgres: StoppablePostgres,
    make_config: MakeConfig,
    aiohttp_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await create_database(own_postgres.uri("postgres"), "app")
    config = make_config(database={"url": own_postgres.uri("app"), "pool_max_size": 4})
    served = await serve(aiohttp_client, config)
    for method, path, user, kw in database_routes(0):
        response = await served.call(method, path, user, **kw)
        assert response.status < 500, f"{path}: {response.status} {await response.text()}"

    await asyncio.to_thread(own_postgres.stop)
    caplog.clear()
    started = time.monotonic()
    answered = 0
    for round_ in range(1, 6):
        for method, path, user, kw in database_routes(round_):
            await assert_outage_answer(await served.call(method, path, user, **kw))
            answered += 1
    elapsed = time.monotonic() - started

    lines = outage_lines(caplog)
    assert lines, "an outage must be logged"
    assert all(r.exc_info is None for r in lines), "no traceback per request"
    assert all("database" in r.getMessage() for r in lines)
    assert len(lines) <= int(elapsed) + 1 < answered
    tracebacks = [
        r for r in caplog.records if r.exc_info and r.name.startswith(("videoforge", "asyncpg"))
    ]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
    health = await served.call("GET", "/api/health")
    assert health.status == 503

    await asyncio.to_thread(own_postgres.start)
    deadline = time.monotonic() + 20
    while (await served.call("GET", "/api/gallery/videos?page=99")).status != 200:
        assert time.monotonic() < deadline, "the routes did not recover"
        await asyncio.sleep(0.2)
    for method, path, user, kw in database_routes(7):
        response = await served.call(method, path, user, **kw)
        assert response.status < 500, f"{path}: {response.status} {await response.text()}"


def test_throttled_log_writes_a_line_a_second_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    throttled = ThrottledLog(logging.getLogger("test.throttle"), clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "test.throttle"):
        for _ in range(50):
            throttled.warning("database", "database unavailable: refused")
            now[0] += 0.01
        throttled.warning("storage", "storage unavailable: refused")
        now[0] = 101.0
        throttled.warning("database", "database unavailable: refused")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "database unavailable: refused",
        "storage unavailable: refused",
        "database unavailable: refused (49 more since the last line)",
    ]


@pytest.fixture
def own_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[S3Server, Any]]:
    with run_seaweedfs(tmp_path) as (server, proc):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
        monkeypatch.setenv("AWS_DEFAULT_REGION", server.region)
        yield server, proc


async def test_storage_outage_answers_503_on_routes_that_reach_it(
    own_s3: tuple[S3Server, Any],
    make_config: MakeConfig,
    aiohttp_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, proc = own_s3
    storage = {
        "backend": "s3",
        "bucket": "outage",
        "endpoint_url": server.endpoint_url,
        "region": server.region,
        "create_bucket": True,
    }
    served = await serve(aiohttp_client, make_config(storage=storage))
    body = {"filename": "a.mp4", "contentType": "video/mp4", "fileSize": len(DATA)}
    ticket = await (await served.call("POST", "/api/upload/generate-url", ALICE, json=body)).json()
    async with aiohttp.ClientSession() as http:
        put = await http.put(
            signed(ticket["uploadUrl"]), data=DATA, headers={"Content-Type": "video/mp4"}
        )
        assert put.status == 200, await put.text()
    unconfirmed = await (
        await served.call("POST", "/api/upload/generate-url", ALICE, json=body)
    ).json()

    proc.terminate()
    await asyncio.to_thread(proc.wait, 30)
    caplog.clear()
    confirm = {"s3Key": ticket["s3Key"], "title": "During the outage"}
    await assert_outage_answer(
        await served.call("POST", "/api/upload/confirm", ALICE, json=confirm)
    )
    missing = {"s3Key": unconfirmed["s3Key"], "title": "Never uploaded"}
    await assert_outage_answer(
        await served.call("POST", "/api/upload/confirm", ALICE, json=missing)
    )
    sweep = await served.call("POST", "/api/admin/storage/sweep", ADMIN)
    await assert_outage_answer(sweep)

    lines = outage_lines(caplog)
    assert lines and all(r.exc_info is None for r in lines)
    assert all("storage" in r.getMessage() for r in lines)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]


async def test_classify_a_value_the_database_refused_is_a_400(db_pool: Any) -> None:
    with pytest.raises(asyncpg.DataError) as caught:
        await db_pool.fetchval("SELECT 1 / $1::int", 0)
    answer = classify(caught.value)
    assert isinstance(answer, BadRequest) and answer.status == 400


async def test_classify_a_refused_connection_is_a_database_outage(tmp_path: Path) -> None:
    with pytest.raises(OSError) as caught:
        await asyncpg.connect(f"postgresql://postgres@/postgres?host={tmp_path}", timeout=5)
    answer = classify(caught.value)
    assert isinstance(answer, ServiceUnavailable) and answer.component == "database"


async def test_classify_an_argument_of_the_wrong_type_is_a_bug_of_ours(db_pool: Any) -> None:
    with pytest.raises(asyncpg.DataError) as caught:
        await db_pool.fetchval("SELECT $1::int", "not a number")
    assert classify(caught.value) is None


def test_classify_a_bug_of_ours_is_left_a_500() -> None:
    assert classify(KeyError("x")) is None
    assert classify(FileNotFoundError("not through asyncpg")) is None
    try:
        try:
            raise ServiceUnavailable("database down")
        except ServiceUnavailable:
            raise KeyError("raised while handling it") from None
    except KeyError as bug:
        assert classify(bug) is None
