"""Transcoding jobs as users see them: create, follow, cancel, and fetch the outputs."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import asyncpg
from aiohttp import web

from videoforge import keys
from videoforge.auth.tokens import Principal
from videoforge.config import Config
from videoforge.db import assets as assets_db
from videoforge.db import jobs as jobs_db
from videoforge.db import videos as videos_db
from videoforge.db.assets import Asset
from videoforge.db.jobs import Job
from videoforge.db.listener import Wakeups
from videoforge.errors import Conflict, Forbidden, NotFound, TooManyRequests
from videoforge.gallery import Gallery
from videoforge.gallery.naming import owner_prefix
from videoforge.gallery.service import original_version
from videoforge.jobs.follow import JobChange, follow
from videoforge.queue import JobQueue
from videoforge.storage import Storage, validate_key
from videoforge.support.paging import row_offset
from videoforge.transcode.ladder import QUALITY_NAMES

log = logging.getLogger(__name__)

JOB_EVENTS_CHANNEL = "videoforge_jobs"  # see migration 3 in schema.sql
# What a user at the active-job cap is told to wait: jobs take minutes, not seconds.
ACTIVE_CAP_RETRY_AFTER = 30


class JobNotFound(NotFound):
    """Job not found"""


class AssetNotFound(NotFound):
    """Asset not found"""


class JobEnded(Conflict):
    """A job that has ended cannot be cancelled: 409, naming its status."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"Job is already {job.status}")


class Jobs:
    """One per application: the job rows, their queue messages and their outputs."""

    def __init__(
        self,
        config: Config,
        pool: asyncpg.Pool,
        storage: Storage,
        queue: JobQueue,
        gallery: Gallery,
    ) -> None:
        self.pool = pool
        self.storage = storage
        self.queue = queue
        self.gallery = gallery
        self.limits = config.limits
        self.limiter = gallery.limiter
        # Status and progress changes, announced by a trigger on `jobs` (for event streams).
        self.events = Wakeups(pool, JOB_EVENTS_CHANNEL)

    async def confirm_upload(
        self,
        viewer: Principal,
        s3_key: str,
        title: str,
        description: str,
        visibility: str,
        transcode: Sequence[str] | None,
    ) -> dict[str, Any]:
        """Record an upload as the viewer's video and, given renditions, queue its job (the
        video as the API shows it, with `jobId`). Over a job limit, nothing is recorded."""
        if transcode:
            await self.admit(viewer)  # a 429 must come before the video is recorded
        video = await self.gallery.confirm_upload(viewer, s3_key, title, description, visibility)
        if not transcode:
            return video
        job = await self.create(viewer, s3_key, transcode, admitted=True)
        return {**video, "jobId": job.id}

    async def admit(self, viewer: Principal) -> None:
        """Count a new job against the viewer's rate limit and check the active-job cap: 429
        when either is reached. Call before any other change a job request makes."""
        await self.limiter.hit(viewer, "new jobs", self.limits.jobs_per_minute)
        cap = self._cap(viewer)
        if cap and await jobs_db.count_active(self.pool, viewer.user_id) >= cap:
            raise self._over_cap()

    async def create(
        self,
        viewer: Principal,
        input_source: str,
        qualities: Sequence[str] = QUALITY_NAMES,
        *,
        admitted: bool = False,
    ) -> Job:
        """A PENDING job on a stored object of the viewer's (admins: any object). `admitted`:
        the caller already ran `admit` for this job."""
        if not admitted:
            await self.admit(viewer)
        validate_key(input_source)
        if not viewer.is_admin and not input_source.startswith(owner_prefix(viewer.user_id)):
            raise Forbidden()
        stored = await self.storage.head(input_source)
        if stored is None:
            raise NotFound("Input source not found")
        video = await videos_db.get_video_by_key(self.pool, input_source)
        # A confirmed original replaced since (through an S3 upload URL, which cannot be
        # revoked) is refused now; the worker checks again when it downloads.
        confirmed = original_version(video) if video else None
        if confirmed is not None:
            confirmed.check(stored.size, stored.etag)
        job = await self._insert_within_cap(viewer, input_source, qualities, video)
        if video is not None:
            await self.gallery.invalidate(video.id)  # `processing` on the new job now
        await self.enqueue(job.id)
        log.info("job %d created by %s on %s", job.id, viewer.user_id, input_source)
        return job

    async def _insert_within_cap(
        self,
        viewer: Principal,
        input_source: str,
        qualities: Sequence[str],
        video: videos_db.Video | None,
    ) -> Job:
        # `admit` checked the cap without a lock; concurrent requests are settled here.
        async with self.pool.acquire() as conn, conn.transaction():
            cap = self._cap(viewer)
            if cap:
                await jobs_db.lock_user_jobs(conn, viewer.user_id)
                if await jobs_db.count_active(conn, viewer.user_id) >= cap:
                    raise self._over_cap()
            job = await jobs_db.insert_job(
                conn,
                user_id=viewer.user_id,
                input_source=input_source,
                qualities=[q for q in QUALITY_NAMES if q in qualities],
                gallery_video_id=video.id if video else None,
            )
            if video is not None:
                await videos_db.settle_videos(conn, [video.id])
            return job

    def _cap(self, viewer: Principal) -> int:
        return 0 if viewer.is_admin else self.limits.max_active_jobs

    def _over_cap(self) -> TooManyRequests:
        return TooManyRequests(
            f"Too many active jobs (at most {self.limits.max_active_jobs}); "
            "wait for one to finish or cancel one",
            retry_after=ACTIVE_CAP_RETRY_AFTER,
        )

    async def enqueue(self, job_id: int) -> None:
        """Send the job's message after its row is committed (a worker must find the row).
        If the send fails, the periodic sweep sends it again: the job is not lost."""
        try:
            await self.queue.send(job_id)
        except Exception:
            log.exception("job %d: enqueue failed; the sweep will retry", job_id)

    async def get(self, viewer: Principal, job_id: int) -> Job:
        """The viewer's own job (admins: any); another user's job is 404, not 403."""
        job = await jobs_db.get_job(self.pool, job_id)
        if job is None or (job.user_id != viewer.user_id and not viewer.is_admin):
            raise JobNotFound()
        return job

    async def list_own(
        self, viewer: Principal, status: str | None, page: int, limit: int
    ) -> tuple[list[Job], int]:
        return await jobs_db.list_jobs(
            self.pool,
            user_id=viewer.user_id,
            status=status,
            limit=limit,
            offset=row_offset(page, limit),
        )

    async def cancel(self, viewer: Principal, job_id: int) -> Job:
        """Cancel a job that has not ended (409 for one that has): a pending one ends at once,
        and its video goes back to what its other jobs say; a running one's worker kills
        ffmpeg within a second, and ends it."""
        job = await self.get(viewer, job_id)
        async with self.pool.acquire() as conn, conn.transaction():
            cancelled = await jobs_db.request_cancel(conn, job_id)
            if cancelled is None:  # it had ended (perhaps since `get`)
                raise JobEnded(await jobs_db.get_job(conn, job_id) or job)
            # A running job's video is settled by its worker, when it ends the job.
            video_id = cancelled.gallery_video_id if cancelled.is_final else None
            if video_id is not None:
                await videos_db.settle_videos(conn, [video_id])
        if video_id is not None:
            await self.gallery.invalidate(video_id)
        log.info("job %d: cancel requested by %s", job.id, viewer.user_id)
        return cancelled

    def follow(self, job: Job) -> AsyncGenerator[JobChange | None, None]:
        """The job's changes as they happen (see `videoforge.jobs.follow`)."""
        return follow(self.pool, self.events, job)

    async def assets(self, viewer: Principal, job_id: int) -> list[Asset]:
        await self.get(viewer, job_id)
        return await assets_db.list_assets(self.pool, job_id)

    async def download_url(self, viewer: Principal, job_id: int, asset_id: int) -> str:
        """A signed URL of one output (the redirect target of the download route)."""
        await self.get(viewer, job_id)
        asset = await assets_db.get_asset(self.pool, job_id, asset_id)
        if asset is None:
            raise AssetNotFound()
        return await self.gallery.delivery_url(job_id, asset.s3_key)


async def jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    jobs = Jobs(
        app[keys.CONFIG], app[keys.DB], app[keys.STORAGE], app[keys.QUEUE], app[keys.GALLERY]
    )
    app[keys.JOBS] = jobs
    try:
        yield
    finally:
        await jobs.events.close()
