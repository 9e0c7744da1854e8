"""The pool (embedded server, configured URL, aiohttp context, health) and the users queries."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import asyncpg
import psutil
import pytest
from aiohttp import web

from videoforge import keys
from videoforge.config import Config, DatabaseConfig, ServerConfig
from videoforge.db import check_database, database_ctx, load_migrations, open_database
from videoforge.db.embedded import EmbeddedServer, create_database
from videoforge.db.users import Credentials, User, create_user, get_credentials, get_user
from videoforge.errors import Conflict, ServiceUnavailable

LATEST = len(load_migrations())


def _config(data_dir: Path, url: str = "") -> Config:
    return Config(
        server=ServerConfig(data_dir=data_dir),
        database=DatabaseConfig(url=url, pool_min_size=1, pool_max_size=2),
    )


def _stopped(pid: int) -> bool:
    """Gone, or a zombie: an orphaned postmaster may wait for a slow init to reap it."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# --- pool ----------------------------------------------------------------------------------------


async def test_open_database_with_empty_url_runs_embedded_server_until_exit(
    embedded_data_dir: Path,
) -> None:
    pgdata = embedded_data_dir / "pg"
    async with open_database(_config(embedded_data_dir)) as pool:
        await check_database(pool)
        assert await pool.fetchval("SELECT current_database()") == "videoforge"
        assert await pool.fetchval("SELECT max(version) FROM schema_migrations") == LATEST
        pid, _, _, _, socket_dir = (pgdata / "postmaster.pid").read_text().splitlines()[:5]
    assert not (pgdata / "postmaster.pid").exists()
    assert _stopped(int(pid))
    with pytest.raises(OSError):
        await asyncpg.connect(host=socket_dir, user="postgres", database="postgres")


async def test_open_database_with_embedded_data_dir_reopens_existing_data(
    embedded_data_dir: Path,
) -> None:
    config = _config(embedded_data_dir / "nested" / "data")
    async with open_database(config) as pool:
        await pool.execute(
            "INSERT INTO users (id, username, password_hash) VALUES ('u1', 'a', 'h')"
        )
    async with open_database(config) as pool:
        assert await pool.fetchval("SELECT username FROM users WHERE id = 'u1'") == "a"


async def test_open_database_after_crashed_user_still_stops_server_on_exit(
    embedded_data_dir: Path,
) -> None:
    config = _config(embedded_data_dir)
    async with open_database(config):
        pass
    # A process that used the server and died without letting go (kill -9) stays listed.
    crashed = await asyncio.create_subprocess_exec("true")
    await crashed.wait()
    handles = embedded_data_dir / "pg" / ".handle_pids.json"
    handles.write_text(json.dumps([crashed.pid]))
    async with open_database(config):
        pid = int((embedded_data_dir / "pg" / "postmaster.pid").read_text().split()[0])
    assert _stopped(pid)


async def test_create_database_called_concurrently_creates_it_once(
    postgres_server: EmbeddedServer,
) -> None:
    name = f"t_{secrets.token_hex(6)}"
    admin_uri = postgres_server.uri()
    try:
        results = await asyncio.gather(*(create_database(admin_uri, name) for _ in range(2)))
        assert sorted(results) == [False, True]
    finally:
        admin = await asyncpg.connect(admin_uri)
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def test_open_database_with_url_uses_that_database(database_url: str, tmp_path: Path) -> None:
    async with open_database(_config(tmp_path, database_url)) as pool:
        assert await pool.fetchval("SELECT count(*) FROM schema_migrations") == LATEST
    assert not (tmp_path / "pg").exists()


async def test_database_ctx_sets_pool_while_app_runs(database_url: str, tmp_path: Path) -> None:
    app = web.Application()
    app[keys.CONFIG] = _config(tmp_path, database_url)
    app.cleanup_ctx.append(database_ctx)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        pool = app[keys.DB]
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await runner.cleanup()
    assert pool.is_closing()


async def test_check_database_with_closed_pool_raises_service_unavailable(
    database_url: str,
) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=0, max_size=1)
    await pool.close()
    with pytest.raises(ServiceUnavailable, match="Database unavailable"):
        await check_database(pool)


# --- users ---------------------------------------------------------------------------------------


async def test_create_user_returns_the_stored_account(db_pool: asyncpg.Pool) -> None:
    user = await create_user(db_pool, user_id="u1", username="Alice", password_hash="h1")
    assert isinstance(user, User)
    assert (user.id, user.username, user.is_admin) == ("u1", "Alice", False)
    assert user.created_at.tzinfo is not None
    assert await get_user(db_pool, "u1") == user


async def test_create_user_with_taken_username_in_other_case_raises_conflict(
    db_pool: asyncpg.Pool,
) -> None:
    await create_user(db_pool, user_id="u1", username="Alice", password_hash="h1")
    with pytest.raises(Conflict, match="Username already taken"):
        await create_user(db_pool, user_id="u2", username="aLICE", password_hash="h2")


async def test_create_user_with_taken_id_raises_conflict(db_pool: asyncpg.Pool) -> None:
    await create_user(db_pool, user_id="u1", username="alice", password_hash="h1")
    with pytest.raises(Conflict, match="User already exists"):
        await create_user(db_pool, user_id="u1", username="bob", password_hash="h2")


async def test_get_credentials_in_other_case_returns_user_and_hash(
    db_pool: asyncpg.Pool,
) -> None:
    created = await create_user(
        db_pool, user_id="u1", username="Alice", password_hash="h1", is_admin=True
    )
    assert await get_credentials(db_pool, "ALICE") == Credentials(created, "h1")


async def test_get_credentials_of_unknown_user_returns_none(db_pool: asyncpg.Pool) -> None:
    assert await get_credentials(db_pool, "nobody") is None


async def test_get_user_unknown_id_returns_none(db_pool: asyncpg.Pool) -> None:
    assert await get_user(db_pool, "missing") is None
