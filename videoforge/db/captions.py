"""Caption tracks of gallery videos: the only module with SQL for `video_captions`.

Tracks are stored already converted to sanitised WebVTT (schema.sql, migration 10); a video has
at most one per language, its tag in RFC 5646 case (`gallery.captions.normalise_language`).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from videoforge.db.types import Executor


@dataclass(frozen=True)
class CaptionTrack:
    """A track as lists show it: its content is read only when a player fetches it."""

    language: str
    label: str


@dataclass(frozen=True)
class JobCaptions:
    """The captions of the video a job transcoded, as its HLS master playlist offers them."""

    video_id: int
    duration: float | None
    tracks: list[CaptionTrack]


async def list_tracks(db: Executor, video_id: int) -> list[CaptionTrack]:
    rows = await db.fetch(
        "SELECT language, label FROM video_captions WHERE video_id = $1 ORDER BY language",
        video_id,
    )
    return [CaptionTrack(**dict(row)) for row in rows]


async def get_content(db: Executor, video_id: int, language: str) -> str | None:
    content: str | None = await db.fetchval(
        "SELECT content FROM video_captions WHERE video_id = $1 AND language = $2",
        video_id,
        language,
    )
    return content


async def put_track(
    db: Executor, video_id: int, language: str, label: str, content: str
) -> bool | None:
    """Add the video's track in `language`, or replace it: True when added, False when replaced,
    None when the video is gone."""
    try:
        added: bool | None = await db.fetchval(
            """
            INSERT INTO video_captions (video_id, language, label, content)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (video_id, language) DO UPDATE
                SET label = excluded.label, content = excluded.content, updated_at = now()
            RETURNING xmax = 0
            """,
            video_id,
            language,
            label,
            content,
        )
    except asyncpg.ForeignKeyViolationError:
        return None  # deleted since it was read
    return added


async def delete_track(db: Executor, video_id: int, language: str) -> bool:
    deleted = await db.fetchval(
        "DELETE FROM video_captions WHERE video_id = $1 AND language = $2 RETURNING 1",
        video_id,
        language,
    )
    return deleted is not None


async def captions_of_job(db: Executor, job_id: int) -> JobCaptions | None:
    """The tracks of the video whose current job is `job_id` (None: no video has it)."""
    rows = await db.fetch(
        """
        SELECT v.id, v.duration, c.language, c.label
        FROM (SELECT id, duration FROM gallery_videos WHERE job_id = $1 ORDER BY id LIMIT 1) v
        LEFT JOIN video_captions c ON c.video_id = v.id
        ORDER BY c.language
        """,
        job_id,
    )
    if not rows:
        return None
    tracks = [CaptionTrack(r["language"], r["label"]) for r in rows if r["language"] is not None]
    return JobCaptions(rows[0]["id"], rows[0]["duration"], tracks)
