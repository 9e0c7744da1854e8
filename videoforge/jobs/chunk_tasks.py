"""Chunk tasks: the chunks of a chunked job, each a task on the queue that any worker runs.

The job's worker plans the chunks (`QueuedChunks`, the `ChunkRunner` its transcode is given),
sends a message per chunk still to do, and runs chunks itself for as long as any is waiting, so a
job never waits on a worker that is not there; other workers' slots take the messages
(`ChunkMessages`). Each chunk's video goes to storage under the job's output prefix, where the
job's worker fetches what others made before it stitches, and where a restarted job finds the
chunks it finished. A chunk is leased and fenced like a job: a worker whose lease was taken can
never complete it, and a worker that dies costs only the chunk it was encoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from videoforge.db import chunks as chunks_db
from videoforge.db import jobs as jobs_db
from videoforge.db.chunks import ChunkTask, PlannedChunk
from videoforge.db.jobs import Job
from videoforge.errors import ObjectNotFound, StorageError
from videoforge.jobs.context import JobFailed, StepContext, describe, failing
from videoforge.jobs.failures import RetryPolicy, error_text
from videoforge.jobs.sources import chunk_source
from videoforge.jobs.transfers import Deadline
from videoforge.jobs.workdirs import WorkDirs
from videoforge.model import ChunkStatus
from videoforge.queue import JobQueue, Message
from videoforge.queue.base import MAX_DELAY_SECONDS, MAX_VISIBILITY_SECONDS
from videoforge.storage import ObjectChanged, content_type_for
from videoforge.storage.layout import HLS_DIR, MASTER_PLAYLIST, OutputLayout
from videoforge.support.concurrency import gather_bounded
from videoforge.transcode.chunk_hls import AUDIO_DIR, ChunkHls, ChunkVariant, hls_playlists
from videoforge.transcode.chunked import (
    CHUNKS_DIR,
    ChunkedRun,
    audio_hls_dir,
    audio_variant,
    encode_chunk,
)
from videoforge.transcode.chunks import Chunk, ChunkLayout
from videoforge.transcode.ladder import Rung, plan_ladder
from videoforge.transcode.outputs import TIMEOUT_GRACE_S, TimeLimit
from videoforge.transcode.probe import InvalidMedia, MediaInfo
from videoforge.transcode.progress import StepCallback
from videoforge.transcode.runner import TranscodeFailed
from videoforge.transcode.source import RemoteSource, Source

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 1.0
POLL_SECONDS = 1.0  # how often the job's worker looks at chunks others run
TRANSFER_CONCURRENCY = 4
# A presigned URL outlives the chunk's ffmpeg run, which reads it to the end of its range.
MIN_URL_SECONDS = 3600


class Outcome(enum.Enum):
    """How one attempt at a chunk ended, for whoever holds its message."""

    COMPLETED = "completed"
    RETRY = "retry"  # failed; the chunk waits to be tried again
    FAILED = "failed"  # failed for good: the job fails
    STOPPED = "stopped"  # its job was cancelled or ended, or another worker took the chunk


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    retry_in: float = 0.0
    retryable: bool = False  # for FAILED: whether it was worth retrying (dead-letter its message)


@dataclass(frozen=True)
class ChunkWork:
    """What encoding one chunk of a job needs, wherever it runs."""

    job: Job
    source: Source
    info: MediaInfo
    ladder: Sequence[Rung]
    work: ChunkLayout
    threads: int | None = None
    limit: TimeLimit | None = None  # the job's, when its own worker runs the chunk


@dataclass(frozen=True)
class ChunkSettings:
    lease_seconds: float
    policy: RetryPolicy
    timeout_factor: float

    @classmethod
    def of(cls, ctx: StepContext) -> ChunkSettings:
        queue = ctx.config.queue
        return cls(
            float(queue.visibility_timeout),
            RetryPolicy(queue.max_attempts),
            ctx.config.transcode.timeout_factor,
        )

    def timeout(self, task: ChunkTask, limit: TimeLimit | None) -> float:
        own = self.timeout_factor * task.duration + TIMEOUT_GRACE_S
        return own if limit is None else min(own, limit.remaining())


def chunk_of(task: ChunkTask) -> Chunk:
    return Chunk(task.index, task.start, task.duration, task.to_end)


def describe_failure(task: ChunkTask, total: int) -> str:
    """A job's errorText for its chunk that failed: `chunk 7 of 60 (6:00-7:00): ...`."""
    span = f"{_clock(task.start)}-{_clock(task.start + task.duration)}"
    return f"chunk {task.index + 1} of {total} ({span}): {task.error_text or 'failed'}"


def _clock(seconds: float) -> str:
    whole = math.floor(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ChunkKeeper:
    """Keeps one running chunk's lease alive with its progress, and stops the chunk once its
    job is cancelled or over, or its lease was taken."""

    def __init__(
        self,
        ctx: StepContext,
        task: ChunkTask,
        lease_seconds: float,
        on_beat: Callable[[], Awaitable[None]] | None,
    ) -> None:
        self.ctx = ctx
        self.task = task
        self.lease_seconds = lease_seconds
        self.on_beat = on_beat
        self.progress: float | None = None
        self.stopped = False

    def report(self, fraction: float) -> None:
        self.progress = fraction

    async def keep_alive(self, main: asyncio.Task[Any]) -> None:
        while not main.done():
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                stop = await chunks_db.heartbeat(
                    self.ctx.pool, self.task, self.ctx.owner, self.lease_seconds, self.progress
                )
                if self.on_beat is not None:
                    await self.on_beat()
            except Exception:
                # The lease is long; a database or queue hiccup is survived by the next beat.
                log.warning("%s: heartbeat failed", _name(self.task), exc_info=True)
                continue
            if stop is None or stop:
                self.stopped = True
                main.cancel()
                return


async def run_chunk(
    ctx: StepContext,
    task: ChunkTask,
    settings: ChunkSettings,
    prepare: Callable[[], Awaitable[ChunkWork]],
    on_beat: Callable[[], Awaitable[None]] | None = None,
) -> Attempt:
    """One attempt at a chunk we claimed: encode it, store its video, mark it COMPLETED; a
    failure is recorded on the chunk (to retry, or for good). Cancelled from outside (a shutdown,
    or its job's own worker stopping), the chunk is handed back for another worker."""
    keeper = ChunkKeeper(ctx, task, settings.lease_seconds, on_beat)

    async def attempt() -> str:
        work = await prepare()
        return await _encode_and_store(ctx, work, task, settings, keeper.report)

    main = asyncio.create_task(attempt())
    guard = asyncio.create_task(keeper.keep_alive(main))
    try:
        hls = await main
    except asyncio.CancelledError:
        if not keeper.stopped:
            await asyncio.shield(chunks_db.release(ctx.pool, task, ctx.owner))
            raise
        log.info("%s: stopped (its job was cancelled, or another worker has it)", _name(task))
        return Attempt(Outcome.STOPPED)
    except JobFailed as exc:
        return await asyncio.shield(_failed(ctx, task, settings, exc.message, exc.retryable))
    except Exception as exc:
        log.exception("%s: unexpected error", _name(task))
        return await asyncio.shield(_failed(ctx, task, settings, describe(exc), True))
    finally:
        guard.cancel()
    if not await chunks_db.complete(ctx.pool, task, ctx.owner, hls):
        log.warning("%s: lease taken over by another worker; leaving it", _name(task))
        return Attempt(Outcome.STOPPED)
    log.info("%s: COMPLETED by %s", _name(task), ctx.owner)
    return Attempt(Outcome.COMPLETED)


async def _encode_and_store(
    ctx: StepContext,
    work: ChunkWork,
    task: ChunkTask,
    settings: ChunkSettings,
    on_progress: Callable[[float], None],
) -> str:
    """Encode the chunk, put its video and its HLS in storage; what its HLS holds (JSON)."""
    chunk = chunk_of(task)
    started = time.monotonic()
    try:
        encoded = await encode_chunk(
            ctx.binaries,
            work.source,
            work.info,
            work.ladder,
            chunk,
            work.work,
            timeout=settings.timeout(task, work.limit),
            on_progress=on_progress,
            threads=work.threads,
        )
    except (InvalidMedia, TranscodeFailed) as exc:
        # Read over the network, a failed ffmpeg may be a connection that did not come back:
        # worth another attempt, where a local file fails the same way every time.
        remote = isinstance(work.source, RemoteSource)
        raise JobFailed(error_text("Transcoding failed", exc), retryable=remote) from exc
    log.info("%s: encoded in %.1f s", _name(task), time.monotonic() - started)
    layout = OutputLayout(work.job.id)
    uploads = [
        (video, layout.chunk_video(task.index, rung.quality))
        for video, rung in zip(encoded.videos, work.ladder, strict=True)
    ]
    for quality, variant in encoded.hls.items():
        directory = work.work.chunk_hls_dir(chunk, quality)
        for name in [variant.init, *(segment.name for segment in variant.segments)]:
            uploads.append((directory / name, layout.hls_file(quality, name)))
    deadline = Deadline(ctx.transfer_retry)

    async def put(upload: tuple[Path, str]) -> None:
        path, key = upload
        await deadline.run(
            lambda: ctx.storage.put_file(key, path, content_type_for(key)), f"upload of {key}"
        )

    with failing("Failed to upload the chunk", StorageError, OSError):
        await gather_bounded(uploads, put, TRANSFER_CONCURRENCY)
    return json.dumps({quality: v.to_json() for quality, v in encoded.hls.items()})


async def _failed(
    ctx: StepContext, task: ChunkTask, settings: ChunkSettings, error: str, retryable: bool
) -> Attempt:
    if retryable and settings.policy.may_retry(task.attempts):
        delay = settings.policy.delay(task.attempts)
        if await chunks_db.fail(ctx.pool, task, ctx.owner, error, delay):
            log.warning(
                "%s: attempt %d failed (%s); retry in %d s",
                _name(task),
                task.attempts,
                error,
                delay,
            )
            return Attempt(Outcome.RETRY, retry_in=delay)
        return Attempt(Outcome.STOPPED)
    if not await chunks_db.fail(ctx.pool, task, ctx.owner, error, None):
        return Attempt(Outcome.STOPPED)
    log.warning("%s: FAILED: %s", _name(task), error)
    return Attempt(Outcome.FAILED, retryable=retryable)


def _name(task: ChunkTask) -> str:
    return f"job {task.job_id} chunk {task.index}"


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
        with failing("Database error", *_DB_ERRORS):
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
        with failing("Database error", *_DB_ERRORS):
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
            with failing("Database error", *_DB_ERRORS):
                task = await chunks_db.claim_next(
                    pool, self.job.id, owner, self.settings.lease_seconds
                )
            if task is not None:
                await run_chunk(self.ctx, task, self.settings, _ready(work))
                continue
            with failing("Database error", *_DB_ERRORS):
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
            except _DB_ERRORS:
                continue
            await on_progress(sum(_done(t) for t in tasks) / run.info.duration)
            await publisher.publish(tasks)

    async def _fetch(self, run: ChunkedRun, chunks: Sequence[Chunk]) -> None:
        """Download the video of the chunks other workers encoded."""
        wanted = [
            (
                run.work.chunk_video(chunk, rung.quality),
                self.layout.chunk_video(chunk.index, rung.quality),
            )
            for chunk in chunks
            for rung in run.ladder
            if not run.work.chunk_video(chunk, rung.quality).is_file()
        ]
        deadline = Deadline(self.ctx.transfer_retry)

        async def get(item: tuple[Path, str]) -> None:
            path, key = item
            path.parent.mkdir(parents=True, exist_ok=True)
            await deadline.run(lambda: self.ctx.storage.get_file(key, path), f"download of {key}")

        with failing("Failed to download a chunk", ObjectNotFound, StorageError, OSError):
            await gather_bounded(wanted, get, TRANSFER_CONCURRENCY)
        if wanted:
            log.info("job %d: fetched %d chunk files from storage", self.job.id, len(wanted))


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


def chunk_hls(task: ChunkTask) -> ChunkHls:
    """What a COMPLETED chunk's HLS holds, per rung."""
    if task.hls is None:
        raise JobFailed(f"chunk {task.index + 1} has no HLS record", retryable=True)
    data = json.loads(task.hls)
    return {quality: ChunkVariant.from_json(variant) for quality, variant in data.items()}


def _done(task: ChunkTask) -> float:
    """Seconds of the source a chunk has encoded."""
    if task.status == ChunkStatus.COMPLETED:
        return task.duration
    return task.duration * task.progress if task.status == ChunkStatus.RUNNING else 0.0


def _ready(work: ChunkWork) -> Callable[[], Awaitable[ChunkWork]]:
    async def prepare() -> ChunkWork:
        return work

    return prepare


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
        log.info("%s: claimed (attempt %d) by %s", _name(task), task.attempts, owner)
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
        with failing("Database error", *_DB_ERRORS):
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


async def delete_chunk_files(ctx: StepContext, job_id: int) -> None:
    """Remove a finished job's chunk files from storage (the sweep removes what this misses)."""
    layout = OutputLayout(job_id)
    try:
        keys = [info.key async for info in ctx.storage.list(layout.chunks_prefix)]
        await gather_bounded(keys, ctx.storage.delete, TRANSFER_CONCURRENCY)
    except Exception:
        log.warning(
            "job %d: deleting its chunk files failed; left to the sweep", job_id, exc_info=True
        )


_DB_ERRORS = (asyncpg.PostgresError, OSError)
