"""Schema migrations: the ordered steps of `schema.sql`, each applied once in a transaction."""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # A plain connection, or one borrowed from a pool (`async with pool.acquire() as conn`).
    Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy

log = logging.getLogger(__name__)

# Any constant works: advisory locks are scoped to the current database. This one spells "vfmigr".
MIGRATION_LOCK_ID = 0x76666D696772

_MARKER = re.compile(r"^-- migration: (?P<version>\d+) (?P<name>\S.*?)\s*$", re.MULTILINE)

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The schema file or the database's migration history cannot be used as it is."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the step's SQL, ignoring surrounding blank space."""
        return hashlib.sha256(self.sql.strip().encode()).hexdigest()


def parse_migrations(text: str) -> list[Migration]:
    """Split schema text at its `-- migration: N name` markers; versions must run 1, 2, 3..."""
    markers = list(_MARKER.finditer(text))
    preamble = text[: markers[0].start()] if markers else text
    if _strip_comments(preamble):
        raise MigrationError("schema.sql: SQL found before the first '-- migration:' marker")
    steps = []
    for index, marker in enumerate(markers):
        end = markers[index + 1].start() if index + 1 < len(markers) else len(text)
        version = int(marker["version"])
        if version != index + 1:
            raise MigrationError(
                f"schema.sql: migration {version} found where {index + 1} was expected"
            )
        steps.append(Migration(version, marker["name"], text[marker.end() : end]))
    return steps


def load_migrations() -> list[Migration]:
    """The migrations of the repository's `schema.sql` (the package's copy is a link to it, and
    a built wheel carries its content)."""
    text = importlib.resources.files("videoforge").joinpath("schema.sql").read_text("utf-8")
    return parse_migrations(text)


async def migrate(
    db: asyncpg.Pool | Connection, migrations: Sequence[Migration] | None = None
) -> list[int]:
    """Apply the pending migrations and return their versions (empty when already up to date)."""
    steps = load_migrations() if migrations is None else list(migrations)
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await _migrate_locked(conn, steps)
    return await _migrate_locked(db, steps)


async def schema_version(db: asyncpg.Pool | Connection) -> int:
    """The highest applied migration (0 on an empty database)."""
    exists = await db.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await db.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))


async def _migrate_locked(conn: Connection, steps: list[Migration]) -> list[int]:
    # A session lock, not a transaction one: every step commits on its own, and a second process
    # starting at the same moment (api + worker) waits here, then finds nothing left to do.
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(_CREATE_TABLE)
        applied = await _applied_checksums(conn)
        _check_history(steps, applied)
        return [await _apply(conn, step) for step in steps if step.version not in applied]
    finally:
        if not conn.is_closed():
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)


async def _applied_checksums(conn: Connection) -> dict[int, str]:
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    return {row["version"]: row["checksum"] for row in rows}


def _check_history(steps: Sequence[Migration], applied: dict[int, str]) -> None:
    """Refuse a database whose applied steps differ from, or run past, the ones we know."""
    known = {step.version: step for step in steps}
    for version, checksum in sorted(applied.items()):
        step = known.get(version)
        if step is None:
            raise MigrationError(
                f"database has migration {version}, which this videoforge does not know: "
                "it was migrated by a newer release"
            )
        if step.checksum != checksum:
            raise MigrationError(
                f"migration {version} ({step.name}) was edited after it was applied: checksum "
                f"{checksum[:12]} in the database, {step.checksum[:12]} in schema.sql; "
                "restore the step and add the change as a new migration"
            )


async def _apply(conn: Connection, step: Migration) -> int:
    async with conn.transaction():
        await conn.execute(step.sql)
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            step.version,
            step.name,
            step.checksum,
        )
    log.info("applied migration %d (%s)", step.version, step.name)
    return step.version


def _strip_comments(sql: str) -> str:
    return "\n".join(
        line for line in sql.splitlines() if not line.lstrip().startswith("--")
    ).strip()
