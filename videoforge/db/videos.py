"""Gallery videos: the only module with SQL for `gallery_videos` and its counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from videoforge.db.types import Executor
from videoforge.errors import Conflict

VISIBILITIES = ("public", "unlisted", "private")

_COLUMNS = """
    id, user_id, title, description, s3_key, content_type, file_size, status, visibility, views,
    duration, resolution, width, height, video_codec, audio_codec, thumbnail_key, preview_key,
    job_id, created_at, updated_at
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
) -> Video:
    """A new `uploaded` video; `Conflict` if its storage key already has one."""
    try:
        row = await pool.fetchrow(
            f"""
            INSERT INTO gallery_videos
                (user_id, title, description, s3_key, visibility, content_type, file_size)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            RETURNING {_COLUMNS}
            """,
            user_id,
            title,
            description,
            s3_key,
            visibility,
            content_type,
            file_size,
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
