"""Chunk tasks of chunked jobs: the only module with SQL for `job_chunks`.

A chunk is claimed, leased and fenced like a job (`db.jobs`): every write a worker makes names
its owner id, so a worker whose lease was taken can never complete (or fail) the chunk. A chunk
may run while its job is not final and not being cancelled, whichever worker holds the job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from videoforge.db.types import Executor
from videoforge.model import FINAL, ChunkStatus


def _sql(*statuses: str) -> str:
    """Statuses as SQL literals (our own constants, never input)."""
    return ", ".join(f"'{status}'" for status in statuses)


_PENDING, _RUNNING = _sql(ChunkStatus.PENDING), _sql(ChunkStatus.RUNNING)
_COMPLETED, _FAILED = _sql(ChunkStatus.COMPLETED), _sql(ChunkStatus.FAILED)
_JOB_FINAL = _sql(*FINAL)

_COLUMNS = """
    c.job_id, c.index, c.start_seconds, c.duration_seconds, c.to_end, c.status, c.progress,
    c.attempts, c.lease_owner, c.error_text, c.hls::text AS hls
"""

# A chunk anyone may take now: waiting (past its retry time), or running under a lapsed lease;
# and its job still wants it.
_CLAIMABLE = f"""
    ((c.status = {_PENDING} AND (c.retry_at IS NULL OR c.retry_at <= now()))
     OR (c.status = {_RUNNING} AND c.lease_expires_at < now()))
    AND EXISTS (SELECT 1 FROM jobs AS j
                WHERE j.id = c.job_id AND NOT j.cancel_requested
                  AND j.status NOT IN ({_JOB_FINAL}))
"""

_TAKE = f"""
    status = {_RUNNING}, attempts = c.attempts + 1, progress = 0, retry_at = NULL,
    lease_owner = $2, lease_expires_at = now() + make_interval(secs => $3::float8)
"""


@dataclass(frozen=True)
class PlannedChunk:
    """One time range of a job's source, as the job's worker planned it."""

    index: int
    start: float
    duration: float
    to_end: bool


@dataclass(frozen=True)
class ChunkTask:
    job_id: int
    index: int
    start: float
    duration: float
    to_end: bool
    status: str
    progress: float
    attempts: int
    lease_owner: str | None
    error_text: str | None
    hls: str | None = None  # JSON, once COMPLETED

    @property
    def planned(self) -> PlannedChunk:
        return PlannedChunk(self.index, self.start, self.duration, self.to_end)


def _task(row: asyncpg.Record | None) -> ChunkTask | None:
    if row is None:
        return None
    data: dict[str, Any] = dict(row)
    data["start"], data["duration"] = data.pop("start_seconds"), data.pop("duration_seconds")
    return ChunkTask(**data)


async def plan(
    conn: Executor, job_id: int, chunks: Sequence[PlannedChunk], media_info: str
) -> list[ChunkTask]:
    """The job's chunks as `chunks` says, in one transaction the caller holds: an earlier
    attempt's COMPLETED chunks of the same plan are kept, its FAILED ones wait again (a restart
    re-runs only those), and a different plan replaces the old one. `media_info` (the probe, as
    JSON) is what workers elsewhere encode their chunk with."""
    await conn.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", job_id)
    existing = await chunks_of(conn, job_id)
    if [task.planned for task in existing] != list(chunks):
        await conn.execute("DELETE FROM job_chunks WHERE job_id = $1", job_id)
        await conn.executemany(
            """
            INSERT INTO job_chunks (job_id, index, start_seconds, duration_seconds, to_end)
            VALUES ($1, $2, $3, $4, $5)
            """,
            [(job_id, c.index, c.start, c.duration, c.to_end) for c in chunks],
        )
    await conn.execute(
        f"""
        UPDATE job_chunks
        SET status = {_PENDING}, attempts = 0, progress = 0, error_text = NULL, retry_at = NULL,
            lease_owner = NULL, lease_expires_at = NULL
        WHERE job_id = $1 AND status = {_FAILED}
        """,
        job_id,
    )
    await _count_completed(conn, job_id, media_info)
    return await chunks_of(conn, job_id)


async def _count_completed(db: Executor, job_id: int, media_info: str | None = None) -> None:
    await db.execute(
        f"""
        UPDATE jobs SET
            chunks_total = (SELECT count(*) FROM job_chunks WHERE job_id = $1),
            chunks_completed = (SELECT count(*) FROM job_chunks
                                WHERE job_id = $1 AND status = {_COMPLETED}),
            media_info = coalesce($2::jsonb, media_info)
        WHERE id = $1
        """,
        job_id,
        media_info,
    )


async def media_info(db: Executor, job_id: int) -> str | None:
    """The probe the job's chunks are encoded with (JSON), once its worker planned them."""
    value: str | None = await db.fetchval("SELECT media_info::text FROM jobs WHERE id = $1", job_id)
    return value


async def chunks_of(db: Executor, job_id: int) -> list[ChunkTask]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM job_chunks AS c WHERE c.job_id = $1 ORDER BY c.index", job_id
    )
    return [task for row in rows if (task := _task(row))]


async def claim(
    db: Executor, job_id: int, index: int, owner: str, lease_seconds: float
) -> ChunkTask | None:
    """Take this chunk if anyone may take it now; None if not."""
    return _task(
        await db.fetchrow(
            f"""
            UPDATE job_chunks AS c SET {_TAKE}
            WHERE c.job_id = $1 AND c.index = $4 AND {_CLAIMABLE}
            RETURNING {_COLUMNS}
            """,
            job_id,
            owner,
            lease_seconds,
            index,
        )
    )


async def claim_next(
    db: Executor, job_id: int, owner: str, lease_seconds: float
) -> ChunkTask | None:
    """Take the job's first chunk that anyone may take now (skipping one being claimed)."""
    return _task(
        await db.fetchrow(
            f"""
            UPDATE job_chunks AS c SET {_TAKE}
            WHERE (c.job_id, c.index) = (
                SELECT c.job_id, c.index FROM job_chunks AS c
                WHERE c.job_id = $1 AND {_CLAIMABLE}
                ORDER BY c.index LIMIT 1
                FOR UPDATE OF c SKIP LOCKED
            )
            RETURNING {_COLUMNS}
            """,
            job_id,
            owner,
            lease_seconds,
        )
    )


async def seconds_until_claimable(db: Executor, job_id: int, index: int) -> float | None:
    """How long until a chunk someone holds (its lease) or that waits to be retried may be
    taken (0 if it may be now); None if it never will: completed, failed, or its job is over."""
    left = await db.fetchval(
        f"""
        SELECT greatest(extract(epoch FROM
                   CASE WHEN c.status = {_RUNNING} THEN c.lease_expires_at
                        ELSE coalesce(c.retry_at, now()) END - now()), 0)::float8
        FROM job_chunks AS c JOIN jobs AS j ON j.id = c.job_id
        WHERE c.job_id = $1 AND c.index = $2 AND c.status IN ({_PENDING}, {_RUNNING})
          AND NOT j.cancel_requested AND j.status NOT IN ({_JOB_FINAL})
        """,
        job_id,
        index,
    )
    return None if left is None else float(left)


async def heartbeat(
    db: Executor, task: ChunkTask, owner: str, lease_seconds: float, progress: float | None
) -> bool | None:
    """Extend our lease on the chunk (and record its progress). None: the lease is lost;
    otherwise whether the chunk should stop (its job was cancelled or is over)."""
    stop: bool | None = await db.fetchval(
        f"""
        UPDATE job_chunks AS c
        SET lease_expires_at = now() + make_interval(secs => $4::float8),
            progress = coalesce($5, c.progress)
        FROM jobs AS j
        WHERE c.job_id = $1 AND c.index = $2 AND c.lease_owner = $3 AND c.status = {_RUNNING}
          AND j.id = c.job_id
        RETURNING j.cancel_requested OR j.status IN ({_JOB_FINAL})
        """,
        task.job_id,
        task.index,
        owner,
        lease_seconds,
        progress,
    )
    return stop


async def complete(pool: asyncpg.Pool, task: ChunkTask, owner: str, hls: str) -> bool:
    """Mark the chunk COMPLETED (its video and its HLS, described by `hls`, are in storage) if
    we still hold it."""
    async with pool.acquire() as conn, conn.transaction():
        done = await conn.fetchval(
            f"""
            UPDATE job_chunks
            SET status = {_COMPLETED}, progress = 1, lease_owner = NULL, lease_expires_at = NULL,
                error_text = NULL, completed_at = now(), hls = $4::jsonb
            WHERE job_id = $1 AND index = $2 AND lease_owner = $3 AND status = {_RUNNING}
            RETURNING index
            """,
            task.job_id,
            task.index,
            owner,
            hls,
        )
        if done is None:
            return False
        await _count_completed(conn, task.job_id)
    return True


async def fail(
    db: Executor, task: ChunkTask, owner: str, error: str, retry_in: float | None
) -> bool:
    """Record a failed attempt of a chunk we hold: it waits `retry_in` seconds for another, or
    with None it has FAILED for good (which fails its job)."""
    status = _FAILED if retry_in is None else _PENDING
    failed = await db.fetchval(
        f"""
        UPDATE job_chunks
        SET status = {status}, error_text = $4, lease_owner = NULL, lease_expires_at = NULL,
            retry_at = now() + make_interval(secs => coalesce($5, 0)::float8)
        WHERE job_id = $1 AND index = $2 AND lease_owner = $3 AND status = {_RUNNING}
        RETURNING index
        """,
        task.job_id,
        task.index,
        owner,
        error,
        retry_in,
    )
    return failed is not None


async def release(db: Executor, task: ChunkTask, owner: str) -> bool:
    """Hand a chunk we hold back, its attempt refunded: its worker is shutting down."""
    released = await db.fetchval(
        f"""
        UPDATE job_chunks
        SET status = {_PENDING}, attempts = greatest(attempts - 1, 0), progress = 0,
            lease_owner = NULL, lease_expires_at = NULL
        WHERE job_id = $1 AND index = $2 AND lease_owner = $3 AND status = {_RUNNING}
        RETURNING index
        """,
        task.job_id,
        task.index,
        owner,
    )
    return released is not None


async def reset(db: Executor, job_id: int, indexes: Sequence[int]) -> None:
    """Back to PENDING: COMPLETED chunks whose video is no longer in storage."""
    await db.execute(
        f"""
        UPDATE job_chunks SET status = {_PENDING}, progress = 0, attempts = 0, completed_at = NULL
        WHERE job_id = $1 AND index = ANY($2::int[]) AND status = {_COMPLETED}
        """,
        job_id,
        indexes,
    )
    await _count_completed(db, job_id)
