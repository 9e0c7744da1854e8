"""Transcoding jobs: the only module with SQL for `jobs`.

A running job carries a lease (owner, expiry). Every write a worker makes is fenced by its
owner id: once a lease lapsed and another worker took the job, the old worker's writes match no
row and it learns that it lost the job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from videoforge.db.types import Executor
from videoforge.model import FINAL, RUNNING, STATUSES, JobStatus
from videoforge.storage.layout import PREVIEW, THUMBNAIL, key_parts


def _sql(*statuses: JobStatus) -> str:
    """Statuses as SQL literals (our own constants, never input): the queries below spell no
    status themselves."""
    return ", ".join(f"'{status.value}'" for status in statuses)


_RUNNING, _FINAL = _sql(*RUNNING), _sql(*FINAL)
_PENDING, _DOWNLOADING = _sql(JobStatus.PENDING), _sql(JobStatus.DOWNLOADING)
_COMPLETED, _FAILED = _sql(JobStatus.COMPLETED), _sql(JobStatus.FAILED)
_CANCELLED = _sql(JobStatus.CANCELLED)


_COLUMNS = """
    id, user_id, input_source, output_format, status, progress, duration, resolution,
    video_codec, audio_codec, error_text, attempts, lease_owner, lease_expires_at,
    cancel_requested, gallery_video_id, created_at, updated_at, started_at, completed_at,
    chunks_total, chunks_completed
"""


@dataclass(frozen=True)
class Job:
    id: int
    user_id: str
    input_source: str
    output_format: str
    status: str
    progress: int
    duration: float | None
    resolution: str | None
    video_codec: str | None
    audio_codec: str | None
    error_text: str | None
    attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    gallery_video_id: int | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    chunks_total: int | None = None  # None: not (yet) encoded in chunks
    chunks_completed: int = 0

    @property
    def qualities(self) -> list[str]:
        return [q for q in self.output_format.split(",") if q]

    @property
    def is_final(self) -> bool:
        return self.status in FINAL


def _job(row: asyncpg.Record | None) -> Job | None:
    return Job(**dict(row)) if row else None


async def insert_job(
    db: Executor,
    *,
    user_id: str,
    input_source: str,
    qualities: Sequence[str],
    gallery_video_id: int | None,
) -> Job:
    row = await db.fetchrow(
        f"""
        INSERT INTO jobs (user_id, input_source, output_format, gallery_video_id)
        VALUES ($1, $2, $3, $4)
        RETURNING {_COLUMNS}
        """,
        user_id,
        input_source,
        ",".join(qualities),
        gallery_video_id,
    )
    job = _job(row)
    assert job is not None
    return job


async def lock_user_jobs(db: Executor, user_id: str) -> None:
    """Serialise job creation per user until the transaction ends (the active-job cap)."""
    await db.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('videoforge.jobs:' || $1, 0))", user_id
    )


async def count_active(db: Executor, user_id: str) -> int:
    """The user's jobs that have not finished (pending or running)."""
    count = await db.fetchval(
        f"""
        SELECT count(*) FROM jobs
        WHERE user_id = $1 AND status NOT IN ({_FINAL})
        """,
        user_id,
    )
    return int(count)


async def get_job(db: Executor, job_id: int) -> Job | None:
    return _job(await db.fetchrow(f"SELECT {_COLUMNS} FROM jobs WHERE id = $1", job_id))


async def list_jobs(
    db: Executor, *, user_id: str | None, status: str | None, limit: int, offset: int
) -> tuple[list[Job], int]:
    """A page of jobs, newest first, and the total matching."""
    where, args = _filters(user_id, status)
    rows = await db.fetch(
        f"""
        SELECT {_COLUMNS} FROM jobs {where}
        ORDER BY created_at DESC, id DESC
        LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}
        """,
        *args,
        limit,
        offset,
    )
    total = await db.fetchval(f"SELECT count(*) FROM jobs {where}", *args)
    return [job for row in rows if (job := _job(row))], int(total)


def _filters(user_id: str | None, status: str | None) -> tuple[str, list[Any]]:
    conditions, args = [], []
    if user_id is not None:
        args.append(user_id)
        conditions.append(f"user_id = ${len(args)}")
    if status is not None:
        args.append(status)
        conditions.append(f"status = ${len(args)}")
    return ("WHERE " + " AND ".join(conditions)) if conditions else "", args


async def claim(db: Executor, job_id: int, owner: str, lease_seconds: float) -> Job | None:
    """Take a pending job, or a running one whose lease lapsed; None if it is not claimable."""
    return _job(
        await db.fetchrow(
            f"""
            UPDATE jobs
            SET status = {_DOWNLOADING}, progress = 0, error_text = NULL,
                attempts = attempts + 1, lease_owner = $2,
                lease_expires_at = now() + make_interval(secs => $3),
                started_at = coalesce(started_at, now())
            WHERE id = $1 AND NOT cancel_requested
              AND (status = {_PENDING}
                   OR (status IN ({_RUNNING})
                       AND lease_expires_at < now()))
            RETURNING {_COLUMNS}
            """,
            job_id,
            owner,
            lease_seconds,
        )
    )


async def heartbeat(
    db: Executor, job_id: int, owner: str, lease_seconds: float, progress: int | None = None
) -> bool | None:
    """Extend our lease (and record progress). None: the lease is lost; otherwise whether a
    cancel was requested."""
    cancel_requested: bool | None = await db.fetchval(
        f"""
        UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3),
                        progress = coalesce($4, progress)
        WHERE id = $1 AND lease_owner = $2 AND status IN ({_RUNNING})
        RETURNING cancel_requested
        """,
        job_id,
        owner,
        lease_seconds,
        progress,
    )
    return cancel_requested


async def lease_seconds_left(db: Executor, job_id: int) -> float | None:
    """Seconds until a running job's lease lapses, by the database's clock (0 once it has: it
    may have lapsed since a claim found it live); None if the job is not running or unknown."""
    left = await db.fetchval(
        f"""
        SELECT greatest(extract(epoch FROM lease_expires_at - now()), 0)::float8 FROM jobs
        WHERE id = $1 AND status IN ({_RUNNING})
        """,
        job_id,
    )
    return None if left is None else float(left)


async def update_running(db: Executor, job_id: int, owner: str, **fields: Any) -> bool:
    """Set status, progress or media metadata of a job we still hold; False if we lost it."""
    allowed = {"status", "progress", "duration", "resolution", "video_codec", "audio_codec"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"not updatable: {', '.join(sorted(unknown))}")
    names = list(fields)
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=3))
    updated = await db.fetchval(
        f"""
        UPDATE jobs SET {assignments}
        WHERE id = $1 AND lease_owner = $2 AND status IN ({_RUNNING})
        RETURNING id
        """,
        job_id,
        owner,
        *(fields[name] for name in names),
    )
    return updated is not None


async def finish(
    db: Executor, job_id: int, owner: str, status: str, error_text: str | None = None
) -> Job | None:
    """End a job we hold: COMPLETED (progress 100), FAILED or CANCELLED; None if we lost it."""
    if status not in FINAL:
        raise ValueError(f"not a final status: {status}")
    return _job(
        await db.fetchrow(
            f"""
            UPDATE jobs
            SET status = $3, error_text = $4, lease_owner = NULL, lease_expires_at = NULL,
                progress = CASE WHEN $3 = {_COMPLETED} THEN 100 ELSE progress END,
                completed_at = now()
            WHERE id = $1 AND lease_owner = $2
              AND status IN ({_RUNNING})
            RETURNING {_COLUMNS}
            """,
            job_id,
            owner,
            status,
            error_text,
        )
    )


async def release(
    db: Executor, job_id: int, owner: str, error_text: str | None, *, refund_attempt: bool = False
) -> bool:
    """Give a job we hold back to the queue (PENDING) for another attempt. A job interrupted by
    a shutdown gets its attempt back: it did not fail."""
    released = await db.fetchval(
        f"""
        UPDATE jobs
        SET status = {_PENDING}, progress = 0, error_text = $3,
            lease_owner = NULL, lease_expires_at = NULL,
            attempts = attempts - CASE WHEN $4 THEN 1 ELSE 0 END
        WHERE id = $1 AND lease_owner = $2
          AND status IN ({_RUNNING})
        RETURNING id
        """,
        job_id,
        owner,
        error_text,
        refund_attempt,
    )
    return released is not None


async def request_cancel(db: Executor, job_id: int) -> Job | None:
    """Cancel: a pending job ends at once; a running one is flagged for its worker to stop."""
    return _job(
        await db.fetchrow(
            f"""
            UPDATE jobs
            SET cancel_requested = true,
                status = CASE WHEN status = {_PENDING} THEN {_CANCELLED} ELSE status END,
                completed_at = CASE WHEN status = {_PENDING} THEN now() ELSE completed_at END
            WHERE id = $1 AND status NOT IN ({_FINAL})
            RETURNING {_COLUMNS}
            """,
            job_id,
        )
    )


async def cancel_abandoned(db: Executor, job_id: int) -> Job | None:
    """End a job whose cancel was requested but whose worker is gone (its lease lapsed)."""
    return _job(
        await db.fetchrow(
            f"""
            UPDATE jobs
            SET status = {_CANCELLED}, lease_owner = NULL, lease_expires_at = NULL,
                completed_at = now()
            WHERE id = $1 AND cancel_requested
              AND status NOT IN ({_FINAL})
              AND (lease_expires_at IS NULL OR lease_expires_at < now())
            RETURNING {_COLUMNS}
            """,
            job_id,
        )
    )


async def stale_job_ids(db: Executor, older_than_seconds: float) -> list[int]:
    """Jobs that should be in the queue but may have lost their message; touched so the next
    sweep waits another period before sending them again."""
    rows = await db.fetch(
        f"""
        UPDATE jobs SET updated_at = now()
        WHERE NOT cancel_requested
          AND updated_at < now() - make_interval(secs => $1)
          AND (status = {_PENDING}
               OR (status IN ({_RUNNING})
                   AND lease_expires_at < now() - make_interval(secs => $1)))
        RETURNING id
        """,
        older_than_seconds,
    )
    return [row["id"] for row in rows]


async def count_by_status(db: Executor) -> dict[str, int]:
    """How many jobs are in each status (every status present, zero if none)."""
    rows = await db.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status")
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    counts.update({row["status"]: int(row["n"]) for row in rows})
    return counts


async def restart_failed(db: Executor) -> list[int]:
    """Every FAILED job back to PENDING with a clean slate, in one statement; their ids.

    The row locks make a concurrent call wait, then find these rows no longer FAILED: each job
    is restarted (and so enqueued) by exactly one caller.
    """
    rows = await db.fetch(
        f"""
        UPDATE jobs
        SET status = {_PENDING}, attempts = 0, error_text = NULL, progress = 0,
            cancel_requested = false, lease_owner = NULL, lease_expires_at = NULL,
            started_at = NULL, completed_at = NULL
        WHERE status = {_FAILED}
        RETURNING id
        """
    )
    return sorted(row["id"] for row in rows)


async def average_processing_seconds(db: Executor) -> float | None:
    """Mean seconds from start to completion over COMPLETED jobs; None if there are none."""
    average = await db.fetchval(
        f"""
        SELECT avg(extract(epoch FROM completed_at - started_at)) FROM jobs
        WHERE status = {_COMPLETED} AND started_at IS NOT NULL AND completed_at IS NOT NULL
        """
    )
    return None if average is None else float(average)


async def delete_ended_before(db: Executor, cutoff: datetime, limit: int) -> list[int]:
    """Delete up to `limit` jobs that ended before `cutoff` (their assets cascade); their ids.

    A job whose outputs a gallery video still uses is kept: its current job (the video streams
    from its outputs; a video with a COMPLETED job shows its newest), or an older one whose
    thumbnail or preview it still shows. Rows another transaction holds are skipped, for the
    next cleanup.
    """
    # A job's output keys from its id, as videoforge.storage.layout.key_parts puts them.
    rows = await db.fetch(
        f"""
        DELETE FROM jobs WHERE id IN (
            SELECT id FROM jobs AS j
            WHERE status IN ({_FINAL}) AND completed_at < $1
              AND NOT EXISTS (SELECT 1 FROM gallery_videos AS v WHERE v.job_id = j.id)
              AND NOT EXISTS (
                  SELECT 1 FROM gallery_videos AS v
                  WHERE v.thumbnail_key = $3::text || j.id || $4::text
                     OR v.preview_key = $5::text || j.id || $6::text)
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        )
        RETURNING id
        """,
        cutoff,
        limit,
        *key_parts(THUMBNAIL),
        *key_parts(PREVIEW),
    )
    return [row["id"] for row in rows]


async def referenced_sources(db: Executor, s3_keys: Sequence[str]) -> set[str]:
    """Which of these keys some job transcodes (or may again, if restarted)."""
    rows = await db.fetch(
        "SELECT DISTINCT input_source FROM jobs WHERE input_source = ANY($1::text[])", s3_keys
    )
    return {row["input_source"] for row in rows}


async def existing_ids(db: Executor, job_ids: Sequence[int]) -> set[int]:
    """Which of these job ids still have a row."""
    rows = await db.fetch("SELECT id FROM jobs WHERE id = ANY($1::bigint[])", job_ids)
    return {row["id"] for row in rows}


async def settled_ids(db: Executor, job_ids: Sequence[int]) -> set[int]:
    """Which of these jobs ended for good: COMPLETED or CANCELLED (a FAILED job may be
    restarted, and then reuses what it finished)."""
    rows = await db.fetch(
        f"""
        SELECT id FROM jobs
        WHERE id = ANY($1::bigint[]) AND status IN ({_COMPLETED}, {_CANCELLED})
        """,
        job_ids,
    )
    return {row["id"] for row in rows}


@dataclass(frozen=True)
class Lease:
    """Who holds a job now, as a work-dir sweep needs to know it."""

    status: str
    owner: str | None
    live: bool  # the lease has not expired


async def leases(db: Executor, job_ids: Sequence[int]) -> dict[int, Lease]:
    """The status and lease of each of these jobs that still has a row."""
    rows = await db.fetch(
        """
        SELECT id, status, lease_owner,
               coalesce(lease_expires_at > now(), false) AS live
        FROM jobs WHERE id = ANY($1::bigint[])
        """,
        job_ids,
    )
    return {row["id"]: Lease(row["status"], row["lease_owner"], row["live"]) for row in rows}
