"""Media assets (a job's outputs): the only module with SQL for `media_assets`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from videoforge.db.types import Executor

_COLUMNS = """
    id, job_id, asset_type, format, quality, s3_key, file_size, width, height, bitrate, created_at
"""


@dataclass(frozen=True)
class NewAsset:
    asset_type: str
    format: str
    quality: str | None
    s3_key: str
    file_size: int | None
    width: int | None = None
    height: int | None = None
    bitrate: int | None = None


@dataclass(frozen=True)
class Asset(NewAsset):
    id: int = 0
    job_id: int = 0
    created_at: datetime | None = None


def _asset(row: asyncpg.Record) -> Asset:
    return Asset(**dict(row))


async def replace_assets(conn: Executor, job_id: int, assets: Sequence[NewAsset]) -> None:
    """A job's complete set of outputs; an earlier attempt's rows are dropped first."""
    await conn.execute("DELETE FROM media_assets WHERE job_id = $1", job_id)
    await conn.executemany(
        """
        INSERT INTO media_assets
            (job_id, asset_type, format, quality, s3_key, file_size, width, height, bitrate)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        [
            (
                job_id,
                a.asset_type,
                a.format,
                a.quality,
                a.s3_key,
                a.file_size,
                a.width,
                a.height,
                a.bitrate,
            )
            for a in assets
        ],
    )


async def list_assets(db: Executor, job_id: int) -> list[Asset]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM media_assets WHERE job_id = $1 ORDER BY id", job_id
    )
    return [_asset(row) for row in rows]


async def get_asset(db: Executor, job_id: int, asset_id: int) -> Asset | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM media_assets WHERE job_id = $1 AND id = $2", job_id, asset_id
    )
    return _asset(row) if row else None
