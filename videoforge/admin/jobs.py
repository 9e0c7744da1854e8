"""Admin job management (use case 5): every user's jobs, statistics, restarts and cleanup."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from aiohttp import web

from videoforge import keys
from videoforge.admin.audit import audit
from videoforge.auth.tokens import Principal
from videoforge.db import jobs as jobs_db
from videoforge.db import videos as videos_db
from videoforge.db.jobs import Job
from videoforge.gallery import Gallery
from videoforge.jobs.service import Jobs
from videoforge.model import RUNNING, JobStatus
from videoforge.storage import Storage
from videoforge.storage.layout import OutputLayout
from videoforge.support.concurrency import gather_bounded
from videoforge.support.paging import row_offset

log = logging.getLogger(__name__)

# Enough at once to be quick, few enough not to flood the queue, the cache or the store.
CONCURRENCY = 50
# Rows deleted per transaction: short transactions, short row locks.
DELETE_BATCH = 500


@dataclass(frozen=True)
class JobStats:
    """How many jobs are in each phase, how long a job takes, and how much is stored."""

    total: int
    pending: int
    processing: int
    completed: int
    failed: int
    cancelled: int
    avg_processing_seconds: float
    storage_bytes: int


@dataclass(frozen=True)
class Cleanup:
    """What a cleanup removed."""

    job_ids: list[int]
    freed_bytes: int


class JobsAdmin:
    """What an admin does to every user's jobs; built per request, it holds nothing itself."""

    def __init__(self, pool: asyncpg.Pool, storage: Storage, jobs: Jobs, gallery: Gallery) -> None:
        self.pool = pool
        self.storage = storage
        self.jobs = jobs
        self.gallery = gallery

    async def all_jobs(
        self, status: str | None, user_id: str | None, page: int, limit: int
    ) -> tuple[list[Job], int]:
        """A page of every user's jobs (or one user's), newest first, and the total matching."""
        return await jobs_db.list_jobs(
            self.pool,
            user_id=user_id,
            status=status,
            limit=limit,
            offset=row_offset(page, limit),
        )

    async def stats(self) -> JobStats:
        """Job counts by phase, mean processing time, and the bytes of everything stored."""
        counts, average, (_, stored) = await asyncio.gather(
            jobs_db.count_by_status(self.pool),
            jobs_db.average_processing_seconds(self.pool),
            self.storage.usage(""),
        )
        return JobStats(
            total=sum(counts.values()),
            pending=counts[JobStatus.PENDING],
            processing=sum(counts[status] for status in RUNNING),
            completed=counts[JobStatus.COMPLETED],
            failed=counts[JobStatus.FAILED],
            cancelled=counts[JobStatus.CANCELLED],
            avg_processing_seconds=average or 0.0,
            storage_bytes=stored,
        )

    async def restart_failed(self, admin: Principal) -> list[int]:
        """Put every FAILED job back in the queue with its attempts reset; their ids."""
        async with self.pool.acquire() as conn, conn.transaction():
            job_ids = await jobs_db.restart_failed(conn)
            # Only videos still pointing at the job: one re-transcoded since keeps its state.
            video_ids = await videos_db.update_videos_of_jobs(conn, job_ids)
        # After the commit: a worker must find the rows PENDING when the messages arrive.
        await gather_bounded(video_ids, self.gallery.invalidate, CONCURRENCY)
        await gather_bounded(job_ids, self.jobs.enqueue, CONCURRENCY)
        for job_id in job_ids:
            log.info("job %d: FAILED -> PENDING, restarted by %s", job_id, admin.user_id)
        audit(admin, "restart-failed", jobs=len(job_ids))
        return job_ids

    async def cleanup_old(self, admin: Principal, days: int) -> Cleanup:
        """Delete jobs that ended more than `days` ago, and their outputs.

        Never a pending or running job, nor one that is still a gallery video's current job
        (the published video streams from its outputs).
        """
        cutoff = datetime.now(UTC) - timedelta(days=days)
        job_ids: list[int] = []
        while True:
            batch = await jobs_db.delete_ended_before(self.pool, cutoff, DELETE_BATCH)
            job_ids += batch
            if len(batch) < DELETE_BATCH:
                break
        # Rows first: files whose row is gone are found by the storage sweep, whereas a row
        # whose files are gone would be a broken job.
        freed = sum(await gather_bounded(job_ids, self._delete_outputs, CONCURRENCY))
        audit(admin, "cleanup-old", days=days, jobs=len(job_ids), freed_bytes=freed)
        return Cleanup(sorted(job_ids), freed)

    async def _delete_outputs(self, job_id: int) -> int:
        """Delete every object under the job's output prefix; the bytes freed."""
        freed = 0
        try:
            # Listed in full first: deleting while a listing walks the objects may skip some.
            objects = [info async for info in self.storage.list(OutputLayout(job_id).prefix)]
            for info in objects:
                await self.storage.delete(info.key)
                freed += info.size
        except Exception:
            # The row is gone already: what is left is an orphan for the storage sweep.
            log.exception("job %d: deleting its outputs failed; left to the sweep", job_id)
        return freed


def jobs_admin(app: web.Application) -> JobsAdmin:
    """The app's `JobsAdmin`: cheap to build, so each request builds its own."""
    return JobsAdmin(app[keys.DB], app[keys.STORAGE], app[keys.JOBS], app[keys.GALLERY])
