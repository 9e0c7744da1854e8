"""A chunked job's own worker: it plans the chunks, hands them out on the queue, runs chunks
itself for as long as any is waiting (so a job never waits on workers that are not there),
publishes the HLS of the chunks ready from the start, and fetches what others encoded before it
stitches (`QueuedChunks`, the `ChunkRunner` its transcode is given).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from videoforge.db import chunks as chunks_db
from videoforge.db import videos
from videoforge.db.chunks import ChunkTask, PlannedChunk
from videoforge.db.jobs import Job
from videoforge.errors import ObjectNotFound, StorageError
from videoforge.jobs.chunk_tasks import (
    DB_ERRORS,
    TRANSFER_CONCURRENCY,
    ChunkSettings,
    ChunkWork,
    chunk_hls,
    describe_failure,
    run_chunk,
)
from videoforge.jobs.context import JobFailed, StepContext, failing
from videoforge.jobs.transfers import Deadline
from videoforge.model import ChunkStatus
from videoforge.queue import JobQueue
from videoforge.storage import content_type_for
from videoforge.storage.layout import HLS_DIR, MASTER_PLAYLIST, OutputLayout
from videoforge.support.concurrency import gather_bounded
from videoforge.transcode.chunk_hls import AUDIO_DIR, ChunkHls, ChunkVariant, hls_playlists
from videoforge.transcode.chunked import (
    ChunkedRun,
    audio_hls_dir,
    audio_variant,
)
from videoforge.transcode.chunks import Chunk, chunk_frames
from videoforge.transcode.ladder import Rung
from videoforge.transcode.progress import StepCallback
from videoforge.transcode.storyboard import storyboard_of

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # how often the job's worker looks at the chunks others run


class QueuedChunks:
    """The job's worker's side (a `ChunkRunner`): plan, hand out, take part, publish what is
    playable, wait, fetch."""

    segments_stored = True  # each chunk's worker puts its HLS segments in storage

    def __init__(self, ctx: StepContext, job: Job, queue: JobQueue) -> None:
        self.ctx = ctx
        self.job = job
        self.queue = queue
        self.settings = ChunkSettings.of(ctx)
        self.layout = OutputLayout(job.id)

    async def encode_all(
        self, run: ChunkedRun, chunks: Sequence[Chunk], on_progress: StepCallback
    ) -> list[ChunkHls]:
        planned = [PlannedChunk(c.index, c.start, c.duration, c.to_end) for c in chunks]
        with failing("Database error", *DB_ERRORS):
            waiting = await self._plan(run, planned)
        await self._send(waiting)
        work = ChunkWork(
            self.job, run.source, run.info, run.ladder, run.work, run.threads, run.limit
        )
        watcher = asyncio.create_task(
            self._watch(run, on_progress, Publisher(self.ctx, run, self.job.id))
        )
        try:
            await self._work_until_done(work)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await self._fetch(run, chunks)
        with failing("Database error", *DB_ERRORS):
            tasks = await chunks_db.chunks_of(self.ctx.pool, self.job.id)
        return [chunk_hls(task) for task in tasks]

    async def _plan(self, run: ChunkedRun, planned: Sequence[PlannedChunk]) -> list[int]:
        """The chunks in the database (keeping what an earlier attempt finished, if its video is
        still stored); the indexes still to encode."""
        media_info = json.dumps(dataclasses.asdict(run.info))
        async with self.ctx.pool.acquire() as conn, conn.transaction():
            tasks = await chunks_db.plan(conn, self.job.id, planned, media_info)
        done = [t.index for t in tasks if t.status == ChunkStatus.COMPLETED]
        missing = [i for i in done if not await self._stored(i, run.ladder)]
        if missing:
            log.warning(
                "job %d: chunks %s are no longer stored; encoding them again", self.job.id, missing
            )
            await chunks_db.reset(self.ctx.pool, self.job.id, missing)
        if done:
            log.info(
                "job %d: %d of %d chunks done before",
                self.job.id,
                len(done) - len(missing),
                len(tasks),
            )
        return [t.index for t in tasks if t.index in missing or t.status != ChunkStatus.COMPLETED]

    async def _stored(self, index: int, ladder: Sequence[Rung]) -> bool:
        for rung in ladder:
            if await self.ctx.storage.head(self.layout.chunk_video(index, rung.quality)) is None:
                return False
        return True

    async def _send(self, indexes: Sequence[int]) -> None:
        """A message per chunk to do, for any worker; should sending fail, this worker still
        runs every chunk itself."""
        try:
            for index in indexes:
                await self.queue.send(self.job.id, chunk=index)
        except Exception:
            log.warning(
                "job %d: sending chunk tasks failed; running them here", self.job.id, exc_info=True
            )

    async def _work_until_done(self, work: ChunkWork) -> None:
        """Run chunks here while any may be taken, then wait for those others run; a chunk
        that failed for good fails the job."""
        pool, owner = self.ctx.pool, self.ctx.owner
        while True:
            if work.limit is not None:
                work.limit.remaining()  # TranscodeTimedOut once the job's time is up
            with failing("Database error", *DB_ERRORS):
                task = await chunks_db.claim_next(
                    pool, self.job.id, owner, self.settings.lease_seconds
                )
            if task is not None:
                await run_chunk(self.ctx, task, self.settings, _ready(work))
                continue
            with failing("Database error", *DB_ERRORS):
                tasks = await chunks_db.chunks_of(pool, self.job.id)
            failed = next((t for t in tasks if t.status == ChunkStatus.FAILED), None)
            if failed is not None:
                raise JobFailed(describe_failure(failed, len(tasks)), retryable=False)
            if all(t.status == ChunkStatus.COMPLETED for t in tasks):
                return
            await asyncio.sleep(POLL_SECONDS)

    async def _watch(
        self, run: ChunkedRun, on_progress: StepCallback, publisher: Publisher
    ) -> None:
        """Once a second: every chunk's progress, weighted by its duration, and the playlists
        of the chunks ready from the start."""
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                tasks = await chunks_db.chunks_of(self.ctx.pool, self.job.id)
            except DB_ERRORS:
                continue
            await on_progress(sum(_done(t) for t in tasks) / run.info.duration)
            await publisher.publish(tasks)

    async def _fetch(self, run: ChunkedRun, chunks: Sequence[Chunk]) -> None:
        """Download the video of the chunks other workers encoded, and their storyboard frames.
        A frame that is not there or cannot be fetched costs only its thumbnail (the tiling
        repeats the one before), never the job."""
        videos = [
            (
                run.work.chunk_video(chunk, rung.quality),
                self.layout.chunk_video(chunk.index, rung.quality),
            )
            for chunk in chunks
            for rung in run.ladder
        ]
        fetched = await self._download(videos)
        if fetched:
            log.info("job %d: fetched %d chunk files from storage", self.job.id, fetched)
        plan = storyboard_of(run.info)
        if plan is None:
            return
        frames = [
            (
                run.work.chunk_frame(chunk, frame),
                self.layout.chunk_storyboard_frame(chunk.index, frame),
            )
            for chunk in chunks
            for frame in chunk_frames(plan, chunk)
        ]
        await self._download(frames, optional=True)

    async def _download(self, files: Sequence[tuple[Path, str]], *, optional: bool = False) -> int:
        """Fetch each (path, key) whose file is not here yet; how many were fetched. An
        `optional` file that cannot be fetched, after the retries, is only logged."""
        wanted = [(path, key) for path, key in files if not path.is_file()]
        deadline = Deadline(self.ctx.transfer_retry)

        async def get(item: tuple[Path, str]) -> None:
            path, key = item
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                await deadline.run(
                    lambda: self.ctx.storage.get_file(key, path), f"download of {key}"
                )
            except (ObjectNotFound, StorageError) as exc:
                if not optional:
                    raise
                path.unlink(missing_ok=True)  # none half written
                log.warning("job %d: %s not fetched: %s", self.job.id, key, exc)

        with failing("Failed to download a chunk", ObjectNotFound, StorageError, OSError):
            await gather_bounded(wanted, get, TRANSFER_CONCURRENCY)
        return len(wanted)


class Publisher:
    """Puts the HLS of the chunks ready from the start where players find it, as EVENT
    playlists that grow as chunks complete: the video plays while its job runs."""

    def __init__(self, ctx: StepContext, run: ChunkedRun, job_id: int) -> None:
        self.ctx = ctx
        self.run = run
        self.layout = OutputLayout(job_id)
        self.published = 0  # chunks in the playlists so far
        self.audio_stored = False

    async def publish(self, tasks: Sequence[ChunkTask]) -> None:
        ready = []
        for task in tasks:
            if task.status != ChunkStatus.COMPLETED or task.hls is None:
                break
            ready.append(chunk_hls(task))
        audio = audio_variant(self.run)
        if len(ready) <= self.published or (self.run.info.has_audio and audio is None):
            return
        try:
            await self._put(ready, audio)
        except (StorageError, OSError) as exc:  # the next beat tries again
            log.warning("job %d: publishing its playlists failed: %s", self.layout.job_id, exc)
            return
        if self.published == 0:
            log.info("job %d: playable (%d chunks ready)", self.layout.job_id, len(ready))
            with contextlib.suppress(*DB_ERRORS):  # only an event's timing: ready will say it
                await videos.mark_playable(self.ctx.pool, self.layout.job_id)
        self.published = len(ready)

    async def _put(self, ready: Sequence[ChunkHls], audio: ChunkVariant | None) -> None:
        if audio is not None and not self.audio_stored:
            directory = audio_hls_dir(self.run)
            names = [audio.init, *(segment.name for segment in audio.segments)]
            files = [(directory / name, self.layout.hls_file(AUDIO_DIR, name)) for name in names]
            await gather_bounded(files, self._put_file, TRANSFER_CONCURRENCY)
            self.audio_stored = True
        playlists = hls_playlists(self.run.ladder, ready, audio, ended=False)
        # The master last: a player that finds it finds every playlist it names.
        for relative in sorted(playlists, key=lambda name: name == MASTER_PLAYLIST):
            key = self.layout.key(f"{HLS_DIR}/{relative}")
            await self.ctx.storage.put_bytes(
                key, playlists[relative].encode(), content_type_for(key)
            )

    async def _put_file(self, item: tuple[Path, str]) -> None:
        path, key = item
        await self.ctx.storage.put_file(key, path, content_type_for(key))


def _done(task: ChunkTask) -> float:
    """Seconds of the source a chunk has encoded."""
    if task.status == ChunkStatus.COMPLETED:
        return task.duration
    return task.duration * task.progress if task.status == ChunkStatus.RUNNING else 0.0


def _ready(work: ChunkWork) -> Callable[[], Awaitable[ChunkWork]]:
    async def prepare() -> ChunkWork:
        return work

    return prepare
