"""Gallery videos: the only module with SQL for `gallery_videos` and its counts."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg import Connection
from asyncpg.pool import PoolConnectionProxy

from videoforge.db.types import Executor
from videoforge.errors import Conflict
from videoforge.model import FINAL, VISIBILITIES, JobStatus

_COLUMNS = """
    id, user_id, title, description, s3_key, content_type, file_size, status, visibility, views,
    duration, resolution, width, height, video_codec, audio_codec, thumbnail_key, preview_key,
    job_id, created_at, updated_at, etag
"""

# Only these may be changed by `update_video`: the caller's schema decides which a user may send.
UPDATABLE = frozenset(
    {
        "title",
        "description",
        "visibility",
        "status",
        "duration",
        "resolution",
        "width",
        "height",
        "video_codec",
        "audio_codec",
        "thumbnail_key",
        "preview_key",
        "job_id",
    }
)


@dataclass(frozen=True)
class Video:
    id: int
    user_id: str
    title: str
    description: str
    s3_key: str
    content_type: str | None
    file_size: int | None
    status: str
    visibility: str
    views: int
    duration: float | None
    resolution: str | None
    width: int | None
    height: int | None
    video_codec: str | None
    audio_codec: str | None
    thumbnail_key: str | None
    preview_key: str | None
    job_id: int | None
    created_at: datetime
    updated_at: datetime
    etag: str | None  # of the original as confirmed (with file_size): later reads check both


def _video(row: asyncpg.Record) -> Video:
    return Video(**dict(row))


@dataclass(frozen=True)
class Slice:
    """Part of a listing: one owner's videos (or everybody's, when `owner` is None)."""

    owner: str | None
    visibilities: tuple[str, ...]


async def insert_video(
    pool: asyncpg.Pool,
    *,
    user_id: str,
    title: str,
    description: str,
    s3_key: str,
    visibility: str,
    content_type: str | None,
    file_size: int,
    etag: str | None = None,
) -> Video:
    """A new `uploaded` video; `Conflict` if its storage key already has one."""
    try:
        row = await pool.fetchrow(
            f"""
            INSERT INTO gallery_videos
                (user_id, title, description, s3_key, visibility, content_type, file_size, etag)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            RETURNING {_COLUMNS}
            """,
            user_id,
            title,
            description,
            s3_key,
            visibility,
            content_type,
            file_size,
            etag,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict("Video already confirmed") from None
    assert row is not None
    return _video(row)


async def get_video(pool: asyncpg.Pool, video_id: int) -> Video | None:
    row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM gallery_videos WHERE id = $1", video_id)
    return _video(row) if row else None


async def get_video_by_key(pool: asyncpg.Pool, s3_key: str) -> Video | None:
    row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM gallery_videos WHERE s3_key = $1", s3_key)
    return _video(row) if row else None


async def count_view(pool: asyncpg.Pool, video_id: int) -> int | None:
    """Add one view atomically and return the new count (None if the video is gone)."""
    views: int | None = await pool.fetchval(
        "UPDATE gallery_videos SET views = views + 1 WHERE id = $1 RETURNING views", video_id
    )
    return views


async def update_video(db: Executor, video_id: int, changes: Mapping[str, Any]) -> Video | None:
    """Set the given columns; None if the video does not exist."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {', '.join(sorted(unknown))}")
    if not changes:
        row = await db.fetchrow(f"SELECT {_COLUMNS} FROM gallery_videos WHERE id = $1", video_id)
        return _video(row) if row else None
    columns = list(changes)
    assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(columns, start=2))
    row = await db.fetchrow(
        f"UPDATE gallery_videos SET {assignments} WHERE id = $1 RETURNING {_COLUMNS}",
        video_id,
        *(changes[column] for column in columns),
    )
    return _video(row) if row else None


async def delete_video(pool: asyncpg.Pool, video_id: int) -> bool:
    """Remove the row (stored files stay for the storage sweep); False if it was not there."""
    deleted = await pool.fetchval("DELETE FROM gallery_videos WHERE id = $1 RETURNING id", video_id)
    return deleted is not None


async def list_videos(
    pool: asyncpg.Pool, slices: Sequence[Slice], search: str | None, limit: int, offset: int
) -> list[Video]:
    """Newest first over the union of disjoint slices; each slice walks its own index."""
    if not slices:
        return []
    args: list[Any] = [limit, offset]
    pattern = _arg(args, _like_pattern(search)) if search else None
    if len(slices) == 1:
        sql = f"{_slice_query(slices[0], args, pattern)} LIMIT $1 OFFSET $2"
    else:
        window = _arg(args, limit + offset)
        union = " UNION ALL ".join(
            f"({_slice_query(piece, args, pattern)} LIMIT {window})" for piece in slices
        )
        sql = f"SELECT * FROM ({union}) AS v ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
    rows = await pool.fetch(sql, *args)
    return [_video(row) for row in rows]


async def count_videos(pool: asyncpg.Pool, slices: Sequence[Slice], search: str | None) -> int:
    """Exact total: from the trigger-kept counts, or (with a search) from the matching rows."""
    if not slices:
        return 0
    if search:
        args: list[Any] = []
        pattern = _arg(args, _like_pattern(search))
        counts = [
            f"(SELECT count(*) FROM gallery_videos WHERE {_where(piece, args, pattern)})"
            for piece in slices
        ]
        return int(await pool.fetchval(f"SELECT {' + '.join(counts)}", *args))
    owners = [piece.owner or "" for piece in slices for _ in piece.visibilities]
    visibilities = [vis for piece in slices for vis in piece.visibilities]
    total = await pool.fetchval(
        """
        SELECT coalesce(sum(n), 0) FROM gallery_video_counts
        WHERE (user_id, visibility) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        """,
        owners,
        visibilities,
    )
    return int(total)


def _slice_query(piece: Slice, args: list[Any], pattern: str | None) -> str:
    where = _where(piece, args, pattern)
    return f"SELECT {_COLUMNS} FROM gallery_videos WHERE {where} ORDER BY created_at DESC, id DESC"


def _where(piece: Slice, args: list[Any], pattern: str | None) -> str:
    # A single visibility is spelled `=`, so the planner walks the (visibility, created_at) index
    # in order instead of sorting every match.
    conditions: list[str] = []
    if len(piece.visibilities) == 1:
        conditions.append(f"visibility = {_arg(args, piece.visibilities[0])}")
    elif set(piece.visibilities) != set(VISIBILITIES):
        conditions.append(f"visibility = ANY({_arg(args, list(piece.visibilities))}::text[])")
    if piece.owner is not None:
        conditions.append(f"user_id = {_arg(args, piece.owner)}")
    if pattern is not None:
        conditions.append(f"(title ILIKE {pattern} OR description ILIKE {pattern})")
    return " AND ".join(conditions) or "true"


def _arg(args: list[Any], value: Any) -> str:
    """Append a query argument and return its placeholder."""
    args.append(value)
    return f"${len(args)}"


def _like_pattern(search: str | None) -> str:
    """`%term%` with the term's own `%`, `_` and `\\` matched literally."""
    term = (search or "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{term}%"


async def update_videos_of_jobs(
    db: Executor, job_ids: Sequence[int], changes: Mapping[str, Any] | None = None
) -> list[int]:
    """Settle the videos of these jobs (see `settle_videos`), then set `changes` (the metadata
    a job probed, say) on those that show one of `job_ids`; the ids of the videos settled.

    A job the video does not show (an old one restarted, say) must not overwrite what the
    shown one wrote. `status` and `job_id` are not among the changes: the video's jobs decide
    them.
    """
    changes = changes or {}
    unknown = set(changes) - (UPDATABLE - _SETTLED)
    if unknown:
        raise ValueError(f"not updatable here: {', '.join(sorted(unknown))}")
    columns = list(changes)
    async with _transaction(db) as conn:
        video_ids = await conn.fetch(
            """
            SELECT gallery_video_id AS id FROM jobs
            WHERE id = ANY($1::bigint[]) AND gallery_video_id IS NOT NULL
            UNION SELECT id FROM gallery_videos WHERE job_id = ANY($1::bigint[])
            """,
            list(job_ids),
        )
        settled = await settle_videos(conn, [row["id"] for row in video_ids])
        if columns:
            assignments = ", ".join(f"{col} = ${i}" for i, col in enumerate(columns, start=2))
            await conn.execute(
                f"UPDATE gallery_videos SET {assignments} WHERE job_id = ANY($1::bigint[])",
                list(job_ids),
                *(changes[column] for column in columns),
            )
    return sorted(settled)


# Written by `settle_videos` alone: the rule below decides them.
_SETTLED = frozenset({"status", "job_id"})

_FINAL = ", ".join(f"'{status.value}'" for status in FINAL)

# The one rule for what a video shows, from its jobs (newest: highest id):
# - its newest COMPLETED job: `ready`, with that job's thumbnail and preview. A video that has
#   played once stays playable: a re-transcode shows only when it completes, and one that is
#   cancelled or fails never takes the finished transcode away (the job says how it went);
# - else its newest job that has not ended: `processing` on it;
# - else (nothing finished, nothing active) its newest job: `failed` if it FAILED, `uploaded` if
#   it was CANCELLED (the original is there to transcode again).
# A video without jobs keeps its state.
_SETTLE = f"""
    WITH completed AS (
        SELECT DISTINCT ON (gallery_video_id) gallery_video_id AS video_id, id
        FROM jobs WHERE gallery_video_id = ANY($1::bigint[]) AND status = '{JobStatus.COMPLETED}'
        ORDER BY gallery_video_id, id DESC
    ), active AS (
        SELECT DISTINCT ON (gallery_video_id) gallery_video_id AS video_id, id
        FROM jobs WHERE gallery_video_id = ANY($1::bigint[]) AND status NOT IN ({_FINAL})
        ORDER BY gallery_video_id, id DESC
    ), newest AS (
        SELECT DISTINCT ON (gallery_video_id) gallery_video_id AS video_id, id, status
        FROM jobs WHERE gallery_video_id = ANY($1::bigint[])
        ORDER BY gallery_video_id, id DESC
    ), shown AS (
        SELECT newest.video_id,
               coalesce(completed.id, active.id, newest.id) AS job_id,
               CASE WHEN completed.id IS NOT NULL THEN 'ready'
                    WHEN active.id IS NOT NULL THEN 'processing'
                    WHEN newest.status = '{JobStatus.FAILED}' THEN 'failed'
                    ELSE 'uploaded' END AS status
        FROM newest LEFT JOIN completed USING (video_id) LEFT JOIN active USING (video_id)
    )
    UPDATE gallery_videos AS v
    SET job_id = shown.job_id, status = shown.status,
        thumbnail_key = CASE WHEN shown.status = 'ready' THEN (
            SELECT s3_key FROM media_assets
            WHERE job_id = shown.job_id AND asset_type = 'thumbnail' ORDER BY id LIMIT 1
        ) ELSE v.thumbnail_key END,
        -- The animated WebP where it was kept (smaller than the GIF), else the GIF.
        preview_key = CASE WHEN shown.status = 'ready' THEN (
            SELECT s3_key FROM media_assets
            WHERE job_id = shown.job_id AND asset_type IN ('webp', 'gif')
            ORDER BY asset_type = 'webp' DESC, id LIMIT 1
        ) ELSE v.preview_key END
    FROM shown WHERE v.id = shown.video_id
    RETURNING v.id
"""


async def settle_videos(db: Executor, video_ids: Sequence[int]) -> set[int]:
    """Give each of these videos the status and job its jobs say (see `_SETTLE`); the ids of
    those that have jobs. Call after any change of a video's jobs, in the same transaction."""
    if not video_ids:
        return set()
    async with _transaction(db) as conn:
        # Locked first, in a statement of its own: a settle that waited for another sees the
        # job changes that one committed, so the last to run decides.
        await conn.execute(
            "SELECT id FROM gallery_videos WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
            list(video_ids),
        )
        rows = await conn.fetch(_SETTLE, list(video_ids))
    return {row["id"] for row in rows}


@contextlib.asynccontextmanager
async def _transaction(db: Executor) -> AsyncIterator[Connection | PoolConnectionProxy]:
    """A transaction on the caller's connection (a savepoint inside theirs), or on one taken
    from the pool."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn, conn.transaction():
            yield conn
    else:
        async with db.transaction():
            yield db


async def mark_playable(db: Executor, job_id: int) -> None:
    """The video this job encodes can be watched already (a trigger reports it, once)."""
    await db.execute(
        "UPDATE gallery_videos SET playable_at = now() WHERE job_id = $1 AND playable_at IS NULL",
        job_id,
    )


async def referenced_keys(db: Executor, s3_keys: Sequence[str]) -> set[str]:
    """Which of these keys a video refers to: as its original, thumbnail or preview."""
    rows = await db.fetch(
        """
        SELECT s3_key AS key FROM gallery_videos WHERE s3_key = ANY($1::text[])
        UNION SELECT thumbnail_key FROM gallery_videos WHERE thumbnail_key = ANY($1::text[])
        UNION SELECT preview_key FROM gallery_videos WHERE preview_key = ANY($1::text[])
        """,
        s3_keys,
    )
    return {row["key"] for row in rows}


@dataclass(frozen=True)
class Usage:
    """The bytes one user's videos and job outputs take, as the database records them."""

    user_id: str
    videos: int
    original_bytes: int
    output_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class UsageTotals:
    """Everybody's usage, and how many users hold any."""

    users: int
    videos: int
    original_bytes: int
    output_bytes: int
    total_bytes: int


# Per owner: the originals (this table) and the outputs of the jobs they own. The one query here
# that reads other tables: a page sorted by the sum of both cannot be built from two modules.
_USAGE = """
    WITH originals AS (
        SELECT user_id, count(*) AS videos, sum(file_size)::bigint AS original_bytes
        FROM gallery_videos GROUP BY user_id
    ), outputs AS (
        SELECT jobs.user_id, sum(media_assets.file_size)::bigint AS output_bytes
        FROM media_assets JOIN jobs ON jobs.id = media_assets.job_id
        GROUP BY jobs.user_id
    ), usage AS (
        SELECT user_id, coalesce(videos, 0) AS videos,
               coalesce(original_bytes, 0) AS original_bytes,
               coalesce(output_bytes, 0) AS output_bytes,
               coalesce(original_bytes, 0) + coalesce(output_bytes, 0) AS total_bytes
        FROM originals FULL JOIN outputs USING (user_id)
    )
"""


async def usage_by_user(db: Executor, limit: int, offset: int) -> list[Usage]:
    """A page of users' usage, most bytes first, then by user id."""
    rows = await db.fetch(
        f"""
        {_USAGE}
        SELECT user_id, videos, original_bytes, output_bytes, total_bytes FROM usage
        ORDER BY total_bytes DESC, user_id
        LIMIT $1 OFFSET $2
        """,
        limit,
        offset,
    )
    return [Usage(**dict(row)) for row in rows]


async def usage_totals(db: Executor) -> UsageTotals:
    """Everybody's usage, and how many users hold any."""
    row = await db.fetchrow(
        f"""
        {_USAGE}
        SELECT count(*) AS users, coalesce(sum(videos), 0)::bigint AS videos,
               coalesce(sum(original_bytes), 0)::bigint AS original_bytes,
               coalesce(sum(output_bytes), 0)::bigint AS output_bytes,
               coalesce(sum(total_bytes), 0)::bigint AS total_bytes
        FROM usage
        """
    )
    assert row is not None
    return UsageTotals(**dict(row))
