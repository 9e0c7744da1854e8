"""Chunk messages: any worker's slot claims a chunk task from the queue, runs it where the source
is (`jobs.sources`), and settles the message as the attempt ended.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from pathlib import Path

from videoforge.db import chunks as chunks_db
from videoforge.db import jobs as jobs_db
from videoforge.db.chunks import ChunkTask
from videoforge.errors import ObjectNotFound, StorageError
from videoforge.jobs.chunk_tasks import (
    DB_ERRORS,
    Attempt,
    ChunkSettings,
    ChunkWork,
    Outcome,
    run_chunk,
    task_name,
)
from videoforge.jobs.context import JobFailed, StepContext, failing
from videoforge.jobs.sources import chunk_source
from videoforge.jobs.workdirs import WorkDirs
from videoforge.queue import JobQueue, Message
from videoforge.queue.base import MAX_DELAY_SECONDS, MAX_VISIBILITY_SECONDS
from videoforge.storage import ObjectChanged
from videoforge.transcode.chunked import (
    CHUNKS_DIR,
)
from videoforge.transcode.chunks import ChunkLayout
from videoforge.transcode.ladder import plan_ladder
from videoforge.transcode.probe import MediaInfo

log = logging.getLogger(__name__)

# A presigned URL outlives the chunk's ffmpeg run, which reads it to the end of its range.
MIN_URL_SECONDS = 3600


class ChunkMessages:
    """Any worker's side: a chunk task's message, claimed, run and settled."""

    def __init__(self, ctx: StepContext, queue: JobQueue, workdirs: WorkDirs) -> None:
        self.ctx = ctx
        self.queue = queue
        self.workdirs = workdirs
        self.settings = ChunkSettings.of(ctx)

    async def handle(self, message: Message) -> None:
        assert message.chunk is not None
        pool, owner = self.ctx.pool, self.ctx.owner
        task = await chunks_db.claim(
            pool, message.job_id, message.chunk, owner, self.settings.lease_seconds
        )
        if task is None:
            await self._not_claimable(message)
            return
        log.info("%s: claimed (attempt %d) by %s", task_name(task), task.attempts, owner)
        if task.attempts > self.settings.policy.max_attempts:
            why = f"Failed after {task.attempts - 1} attempts: its worker stopped every time"
            await chunks_db.fail(pool, task, owner, why, None)
            await self.queue.dead_letter(message)
            return
        try:
            attempt = await self._run(task, message)
        except asyncio.CancelledError:
            await asyncio.shield(self.queue.release(message))  # shutting down: for another
            raise
        await self._settle(message, attempt)

    async def _not_claimable(self, message: Message) -> None:
        assert message.chunk is not None
        left = await chunks_db.seconds_until_claimable(self.ctx.pool, message.job_id, message.chunk)
        if left is None:  # done, failed for good, or its job is over: nothing left to do
            await self.queue.ack(message)
        else:  # held by a worker that may die, or waiting to be retried: back when it may be
            await self.queue.release(message, min(left, MAX_DELAY_SECONDS))

    async def _run(self, task: ChunkTask, message: Message) -> Attempt:
        workdir = self.workdirs.create(task.job_id)
        extend = _Extender(self.queue, message, self.settings.lease_seconds)
        try:
            return await run_chunk(
                self.ctx, task, self.settings, lambda: self._prepare(task, workdir), extend.beat
            )
        finally:
            self.workdirs.release(workdir, task.job_id)

    async def _prepare(self, task: ChunkTask, workdir: Path) -> ChunkWork:
        """The job, its probe and its ladder from the database, and the source where it is."""
        with failing("Database error", *DB_ERRORS):
            job = await jobs_db.get_job(self.ctx.pool, task.job_id)
            raw = await chunks_db.media_info(self.ctx.pool, task.job_id)
        if job is None or raw is None:
            raise JobFailed("Its job is gone", retryable=False)
        info = MediaInfo(**json.loads(raw))
        reported = (ObjectNotFound, ObjectChanged, StorageError, OSError)
        with failing("Failed to read source video", *reported):
            version = await self.ctx.gallery.confirmed_version(job.input_source)
            seconds = max(MIN_URL_SECONDS, math.ceil(self.settings.timeout(task, None)))
            source = await chunk_source(self.ctx.storage, job.input_source, version, seconds)
        return ChunkWork(
            job, source, info, plan_ladder(info, job.qualities), ChunkLayout(workdir / CHUNKS_DIR)
        )

    async def _settle(self, message: Message, attempt: Attempt) -> None:
        if attempt.outcome is Outcome.RETRY:
            await self.queue.extend(message, math.ceil(attempt.retry_in))
        elif attempt.outcome is Outcome.FAILED and attempt.retryable:
            await self.queue.dead_letter(message)
        else:
            await self.queue.ack(message)


class _Extender:
    """Keeps a chunk's message hidden while it runs: renewed every third of the lease."""

    def __init__(self, queue: JobQueue, message: Message, lease_seconds: float) -> None:
        self.queue = queue
        self.message = message
        self.hidden = min(math.ceil(lease_seconds), MAX_VISIBILITY_SECONDS)
        self.every = lease_seconds / 3
        self.extended_at = time.monotonic()

    async def beat(self) -> None:
        if time.monotonic() - self.extended_at > self.every:
            await self.queue.extend(self.message, self.hidden)
            self.extended_at = time.monotonic()
