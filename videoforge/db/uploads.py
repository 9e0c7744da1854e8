"""Upload URLs handed out and not yet confirmed: the only module with SQL for `uploads`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from videoforge.db.types import Executor


async def record_upload(
    db: Executor, s3_key: str, user_id: str, declared_size: int | None = None
) -> None:
    """Remember that an upload URL was made for `s3_key`, and the size its client declared
    (made again: its clock restarts, with the new declaration)."""
    await db.execute(
        """
        INSERT INTO uploads (s3_key, user_id, declared_size) VALUES ($1, $2, $3)
        ON CONFLICT (s3_key) DO UPDATE
            SET created_at = now(), declared_size = excluded.declared_size
        """,
        s3_key,
        user_id,
        declared_size,
    )


async def declared_size(db: Executor, s3_key: str) -> int | None:
    """The size declared when the upload URL for `s3_key` was made; None if none was."""
    size: int | None = await db.fetchval(
        "SELECT declared_size FROM uploads WHERE s3_key = $1", s3_key
    )
    return size


async def forget_upload(db: Executor, s3_key: str) -> None:
    """The upload was confirmed: its video row refers to the key from now on."""
    await db.execute("DELETE FROM uploads WHERE s3_key = $1", s3_key)


async def upload_times(db: Executor, s3_keys: Sequence[str]) -> dict[str, datetime]:
    """When the upload URL of each of these keys was made; keys without one are left out."""
    rows = await db.fetch(
        "SELECT s3_key, created_at FROM uploads WHERE s3_key = ANY($1::text[])", s3_keys
    )
    return {row["s3_key"]: row["created_at"] for row in rows}


async def abandoned_before(db: Executor, max_age: timedelta) -> datetime:
    """The moment (by the database's clock) before which an unconfirmed upload is abandoned."""
    cutoff: datetime = await db.fetchval("SELECT now() - $1::interval", max_age)
    return cutoff


async def delete_uploads_before(db: Executor, cutoff: datetime) -> int:
    """Forget the uploads made before `cutoff`; how many rows went."""
    deleted = await db.fetchval(
        """
        WITH gone AS (DELETE FROM uploads WHERE created_at < $1 RETURNING 1)
        SELECT count(*) FROM gone
        """,
        cutoff,
    )
    return int(deleted)
