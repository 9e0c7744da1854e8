"""Upload URLs handed out and not yet confirmed: the only module with SQL for `uploads`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Upload:
    """An upload handed out and not yet confirmed."""

    s3_key: str
    user_id: str
    declared_size: int | None
    multipart_upload_id: str | None
    completed: bool  # a multipart upload's parts are assembled (a single PUT: always False)

    @property
    def unfinished(self) -> bool:
        """A multipart upload whose object does not exist yet."""
        return self.multipart_upload_id is not None and not self.completed


_UPLOAD_COLUMNS = """
    s3_key, user_id, declared_size, multipart_upload_id, completed_at IS NOT NULL AS completed
"""


async def record_multipart(
    db: Executor, s3_key: str, user_id: str, upload_id: str, declared_size: int | None
) -> None:
    """Remember a multipart upload: whose it is, the key it builds, the size declared."""
    await db.execute(
        """
        INSERT INTO uploads (s3_key, user_id, declared_size, multipart_upload_id)
        VALUES ($1, $2, $3, $4)
        """,
        s3_key,
        user_id,
        declared_size,
        upload_id,
    )


async def get_multipart(db: Executor, upload_id: str) -> Upload | None:
    row = await db.fetchrow(
        f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE multipart_upload_id = $1", upload_id
    )
    return Upload(**row) if row else None


async def get_upload(db: Executor, s3_key: str) -> Upload | None:
    row = await db.fetchrow(f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE s3_key = $1", s3_key)
    return Upload(**row) if row else None


async def mark_completed(db: Executor, upload_id: str) -> None:
    """The upload's parts are one object now."""
    await db.execute(
        "UPDATE uploads SET completed_at = now() WHERE multipart_upload_id = $1", upload_id
    )


async def forget_multipart(db: Executor, upload_id: str) -> None:
    """Forget the multipart upload: aborted, or refused once assembled."""
    await db.execute("DELETE FROM uploads WHERE multipart_upload_id = $1", upload_id)


async def forget_upload(db: Executor, s3_key: str) -> None:
    """The upload was confirmed: its video row refers to the key from now on."""
    await db.execute("DELETE FROM uploads WHERE s3_key = $1", s3_key)


async def upload_times(db: Executor, s3_keys: Sequence[str]) -> dict[str, datetime]:
    """When the upload URL of each of these keys was made; keys without one are left out."""
    rows = await db.fetch(
        "SELECT s3_key, created_at FROM uploads WHERE s3_key = ANY($1::text[])", s3_keys
    )
    return {row["s3_key"]: row["created_at"] for row in rows}


async def multipart_times(db: Executor, upload_ids: Sequence[str]) -> dict[str, datetime]:
    """When each of these multipart uploads was started; ids without a row are left out."""
    rows = await db.fetch(
        """
        SELECT multipart_upload_id, created_at FROM uploads
        WHERE multipart_upload_id = ANY($1::text[])
        """,
        upload_ids,
    )
    return {row["multipart_upload_id"]: row["created_at"] for row in rows}


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
