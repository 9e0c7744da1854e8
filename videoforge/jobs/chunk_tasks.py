"""A chunk task: one chunk of a chunked job, encoded by whichever worker claimed it.

Its worker encodes the chunk's time range of the source, puts the chunk's video (for the stitch)
and its HLS segments in storage under the job's output prefix, and marks the chunk COMPLETED with
what its HLS holds. A chunk is leased and fenced like a job: a worker whose lease was taken can
never complete it, and a worker that dies costs only the chunk it was encoding. The job's own
worker hands chunks out and runs them too (`jobs.chunked_job`); any worker's slot takes the
chunk messages (`jobs.chunk_messages`).
"""

from __future__ import annotations

import asyncio
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
from videoforge.db.chunks import ChunkTask
from videoforge.db.jobs import Job
from videoforge.errors import StorageError
from videoforge.jobs.context import JobFailed, StepContext, describe, failing
from videoforge.jobs.failures import RetryPolicy, error_text
from videoforge.jobs.transfers import Deadline
from videoforge.storage import content_type_for
from videoforge.storage.layout import OutputLayout
from videoforge.support.concurrency import gather_bounded
from videoforge.transcode.chunk_hls import ChunkHls, ChunkVariant
from videoforge.transcode.chunked import (
    encode_chunk,
)
from videoforge.transcode.chunks import Chunk, ChunkLayout
from videoforge.transcode.ladder import Rung
from videoforge.transcode.outputs import TIMEOUT_GRACE_S, TimeLimit
from videoforge.transcode.probe import InvalidMedia, MediaInfo
from videoforge.transcode.runner import TranscodeFailed
from videoforge.transcode.source import RemoteSource, Source

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 1.0
TRANSFER_CONCURRENCY = 4
# What a database failure raises (retried as `jobs.failures` says).
DB_ERRORS = (asyncpg.PostgresError, OSError)


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
                log.warning("%s: heartbeat failed", task_name(self.task), exc_info=True)
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
        log.info("%s: stopped (its job was cancelled, or another worker has it)", task_name(task))
        return Attempt(Outcome.STOPPED)
    except JobFailed as exc:
        return await asyncio.shield(_failed(ctx, task, settings, exc.message, exc.retryable))
    except Exception as exc:
        log.exception("%s: unexpected error", task_name(task))
        return await asyncio.shield(_failed(ctx, task, settings, describe(exc), True))
    finally:
        guard.cancel()
    if not await chunks_db.complete(ctx.pool, task, ctx.owner, hls):
        log.warning("%s: lease taken over by another worker; leaving it", task_name(task))
        return Attempt(Outcome.STOPPED)
    log.info("%s: COMPLETED by %s", task_name(task), ctx.owner)
    return Attempt(Outcome.COMPLETED)


async def _encode_and_store(
    ctx: StepContext,
    work: ChunkWork,
    task: ChunkTask,
    settings: ChunkSettings,
    on_progress: Callable[[float], None],
) -> str:
    """Encode the chunk, put its video, its HLS and its storyboard frames in storage; what its
    HLS holds (JSON)."""
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
    log.info("%s: encoded in %.1f s", task_name(task), time.monotonic() - started)
    layout = OutputLayout(work.job.id)
    uploads = [
        (video, layout.chunk_video(task.index, rung.quality))
        for video, rung in zip(encoded.videos, work.ladder, strict=True)
    ]
    for quality, variant in encoded.hls.items():
        directory = work.work.chunk_hls_dir(chunk, quality)
        for name in [variant.init, *(segment.name for segment in variant.segments)]:
            uploads.append((directory / name, layout.hls_file(quality, name)))
    # The storyboard's frames travel with the chunk: the job's worker tiles them all at the end.
    for frame, path in encoded.frames.items():
        uploads.append((path, layout.chunk_storyboard_frame(task.index, frame)))
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
                task_name(task),
                task.attempts,
                error,
                delay,
            )
            return Attempt(Outcome.RETRY, retry_in=delay)
        return Attempt(Outcome.STOPPED)
    if not await chunks_db.fail(ctx.pool, task, ctx.owner, error, None):
        return Attempt(Outcome.STOPPED)
    log.warning("%s: FAILED: %s", task_name(task), error)
    return Attempt(Outcome.FAILED, retryable=retryable)


def task_name(task: ChunkTask) -> str:
    return f"job {task.job_id} chunk {task.index}"


def chunk_hls(task: ChunkTask) -> ChunkHls:
    """What a COMPLETED chunk's HLS holds, per rung."""
    if task.hls is None:
        raise JobFailed(f"chunk {task.index + 1} has no HLS record", retryable=True)
    data = json.loads(task.hls)
    return {quality: ChunkVariant.from_json(variant) for quality, variant in data.items()}


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
