"""The worker pool: claims jobs from the queue and runs them, supervised.

A stop event, a semaphore of `transcode.workers` slots, and a short long-poll per turn. Each job
runs beside a keeper that renews the lease and the message's visibility, writes progress, and
notices a cancel or a lost lease within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import math
import os
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from aiohttp import web

from videoforge import keys
from videoforge.config import Config
from videoforge.db import jobs as jobs_db
from videoforge.db.jobs import Job
from videoforge.jobs.chunk_messages import ChunkMessages
from videoforge.jobs.context import JobFailed, LeaseLost, StepContext, describe
from videoforge.jobs.failures import RetryPolicy
from videoforge.jobs.steps import (
    finished_outputs,
    keep_for_retry,
    run_job,
    settle_video,
)
from videoforge.jobs.workdirs import WorkDirs, reclaim_and_report, reclaim_periodically
from videoforge.model import JobStatus
from videoforge.queue import JobQueue, Message
from videoforge.queue.base import MAX_DELAY_SECONDS, MAX_VISIBILITY_SECONDS

log = logging.getLogger(__name__)

RECEIVE_WAIT_SECONDS = 2.0
HEARTBEAT_SECONDS = 1.0
SWEEP_SECONDS = 60.0


class WorkerPool:
    def __init__(self, config: Config, step_context: StepContext, queue: JobQueue) -> None:
        self.config = config
        self.ctx = step_context
        self.pool: asyncpg.Pool = step_context.pool
        self.queue = queue
        self.owner = step_context.owner
        self.policy = RetryPolicy(config.queue.max_attempts)
        self.lease_seconds = float(config.queue.visibility_timeout)
        self.stopping = asyncio.Event()
        self.running: set[asyncio.Task[None]] = set()
        self.workdirs = WorkDirs(Path(self._temp_dir() or tempfile.gettempdir()), self.owner)
        self.chunks = ChunkMessages(step_context, queue, self.workdirs)

    async def run(self) -> None:
        """Claim and run jobs until `stop`."""
        slots = asyncio.Semaphore(self.config.transcode.workers)
        while not self.stopping.is_set():
            await slots.acquire()
            messages = await self._receive()
            if not messages or self.stopping.is_set():
                # Received while stopping: hand them straight back for another worker (a
                # hand-back is not a failed delivery: it costs the message nothing).
                await self._hand_back(messages)
                slots.release()
                continue
            message, extras = messages[0], messages[1:]
            # One slot runs one message. Should a receive of one ever bring more, the rest go
            # back at once: dropped, they would sit invisible for the whole visibility timeout
            # with a delivery counted against them.
            if extras:
                log.warning("queue: a receive of 1 brought %d more; handed back", len(extras))
                await self._hand_back(extras)
            task = asyncio.create_task(self.handle(message))
            self.running.add(task)

            def done(finished: asyncio.Task[None]) -> None:
                self.running.discard(finished)
                slots.release()

            task.add_done_callback(done)

    async def _hand_back(self, messages: list[Message]) -> None:
        """Release messages this worker will not run. A failed release is only logged: the
        message comes back anyway once its visibility runs out, and the loop must go on."""
        results = await asyncio.gather(
            *(self.queue.release(m) for m in messages), return_exceptions=True
        )
        for message, result in zip(messages, results, strict=True):
            if isinstance(result, Exception):
                log.warning("job %d: handing its message back failed: %s", message.job_id, result)

    async def _receive(self) -> list[Message]:
        if self.stopping.is_set():
            return []
        try:
            return await self._receive_unless_stopped()
        except Exception:
            log.exception("receiving from the queue failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.config.queue.poll_interval)
            return []

    async def _receive_unless_stopped(self) -> list[Message]:
        # An idle long poll is abandoned at once on stop, so shutdown does not wait for it.
        receive = asyncio.ensure_future(self.queue.receive(1, wait_seconds=RECEIVE_WAIT_SECONDS))
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({receive, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if receive.done():
            return receive.result()
        receive.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receive
        return []

    async def stop(self, grace: float) -> None:
        """Stop claiming; let running jobs finish within `grace`, then interrupt them (their
        messages are released so another worker starts them at once)."""
        self.stopping.set()
        if not self.running:
            return
        log.info("waiting up to %.0f s for %d running job(s)", grace, len(self.running))
        _, pending = await asyncio.wait(self.running, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def handle(self, message: Message) -> None:
        """Claim the message's job (or chunk) and run it; decide what happens to the message."""
        if message.chunk is not None:
            await self.chunks.handle(message)
            return
        job = await jobs_db.claim(self.pool, message.job_id, self.owner, self.lease_seconds)
        if job is None:
            await self._not_claimable(message)
            return
        claimed_at = time.monotonic()
        log.info("job %d: claimed (attempt %d) by %s", job.id, job.attempts, self.owner)
        if job.attempts > self.policy.max_attempts:
            final = await self._give_up(job, message, "its worker stopped during every attempt")
        else:
            await settle_video(self.ctx, job)
            final = await self._run_supervised(job, message)
        if final is not None and self.ctx.metrics is not None:
            self.ctx.metrics.job_finished(final, time.monotonic() - claimed_at)

    async def _not_claimable(self, message: Message) -> None:
        job = await jobs_db.get_job(self.pool, message.job_id)
        if job is not None and job.cancel_requested and not job.is_final:
            # Ends it only if its worker is gone (its lease lapsed); else that worker will.
            cancelled = await jobs_db.cancel_abandoned(self.pool, job.id)
            if cancelled is not None:
                await settle_video(self.ctx, cancelled)
        left = await jobs_db.lease_seconds_left(self.pool, message.job_id)
        if left is not None:
            # Leased by another worker, which may have died: hand the message back (an uncounted
            # delivery) for the moment that lease lapses (at once if it lapsed since our claim),
            # instead of dropping it and leaving the job to the sweep. If the holder lives on,
            # it renewed its lease: back again then.
            await self.queue.release(message, min(left, MAX_DELAY_SECONDS))
            return
        # Finished, cancelled or unknown: this copy of the message has nothing left to do.
        await self.queue.ack(message)

    async def _run_supervised(self, job: Job, message: Message) -> str | None:
        """Run the job beside its keeper; the final status this worker wrote, if it wrote one."""
        workdir = self._workdir(job)
        keep = False  # the outputs, for the next attempt to upload
        supervisor = Supervisor(self, job, message)
        main = asyncio.create_task(self._run(job, workdir, supervisor))
        keeper = asyncio.create_task(supervisor.keep_alive(main))
        try:
            await main
            await asyncio.shield(self.queue.ack(message))
            return JobStatus.COMPLETED
        except asyncio.CancelledError:
            if supervisor.stop_reason is None:  # the pool is shutting down
                await asyncio.shield(self._interrupted(job, message))
                raise
            return await asyncio.shield(self._stopped(job, message, supervisor.stop_reason))
        except LeaseLost:
            log.warning("job %d: lease taken over by another worker; leaving it", job.id)
            return None
        except JobFailed as exc:
            keep = self._keep(job, workdir, exc.retryable)
            return await asyncio.shield(self._failed(job, message, exc.message, exc.retryable))
        except Exception as exc:
            log.exception("job %d: unexpected error", job.id)
            keep = self._keep(job, workdir, True)
            return await asyncio.shield(self._failed(job, message, describe(exc), True))
        finally:
            keeper.cancel()
            self.workdirs.release(workdir, job.id, keep=keep)

    async def _run(self, job: Job, workdir: Path, supervisor: Supervisor) -> None:
        if job.attempts > 1:
            # An earlier attempt's worker may have died on this host: now that this worker holds
            # the lease, that worker's dir is stale, and need not wait for the periodic reclaim.
            await reclaim_and_report(self.workdirs, self.pool, self.report_reclaimed)
        await run_job(self._context(supervisor), job, workdir)

    def report_reclaimed(self, size: int) -> None:
        if self.ctx.metrics is not None:
            self.ctx.metrics.reclaimed_workdir_bytes(size)

    def _workdir(self, job: Job) -> Path:
        """The work dir kept from this job's last attempt here, if its outputs still fit the job;
        else a fresh one."""
        kept = self.workdirs.take_kept(job.id)
        if kept is not None:
            if finished_outputs(kept, job) is not None:
                return kept
            self.workdirs.release(kept, job.id)
        return self.workdirs.create(job.id)

    def _keep(self, job: Job, workdir: Path, retryable: bool) -> bool:
        # Only an attempt that will be retried, and only finished outputs: an upload that failed
        # is then retried without downloading and encoding again (if this worker gets it).
        if not (retryable and self.policy.may_retry(job.attempts)):
            return False
        try:
            kept = keep_for_retry(workdir, job)
        except OSError:  # never in the way of recording the failure
            log.warning("job %d: cannot keep its outputs", job.id, exc_info=True)
            return False
        if kept:
            log.info("job %d: keeping its finished outputs for the next attempt", job.id)
        return kept

    def _context(self, supervisor: Supervisor) -> StepContext:
        return dataclasses.replace(self.ctx, report_progress=supervisor.report_progress)

    def _temp_dir(self) -> str | None:
        configured = self.config.transcode.temp_dir
        if configured:
            Path(configured).mkdir(parents=True, exist_ok=True)
        return configured or None

    async def _stopped(self, job: Job, message: Message, reason: StopReason) -> str | None:
        if reason is not StopReason.CANCEL:
            log.warning("job %d: lease lost; another worker has it", job.id)
            return None
        final = None
        if await jobs_db.finish(self.pool, job.id, self.owner, JobStatus.CANCELLED):
            final = JobStatus.CANCELLED
            await settle_video(self.ctx, job)
            log.info("job %d: CANCELLED", job.id)
        await self.queue.ack(message)
        return final

    async def _interrupted(self, job: Job, message: Message) -> None:
        # Not a failure: the job gets its attempt back, and the released message its delivery.
        if await jobs_db.release(self.pool, job.id, self.owner, None, refund_attempt=True):
            log.info("job %d: interrupted by shutdown; back to PENDING", job.id)
        await self.queue.release(message)

    async def _failed(self, job: Job, message: Message, error: str, retryable: bool) -> str | None:
        if retryable and self.policy.may_retry(job.attempts):
            delay = self.policy.delay(job.attempts)
            if await jobs_db.release(self.pool, job.id, self.owner, error):
                log.warning(
                    "job %d: attempt %d failed (%s); retry in %d s",
                    job.id,
                    job.attempts,
                    error,
                    delay,
                )
                await self.queue.extend(message, delay)
            return None
        final = await self._fail(job, error)
        if retryable:
            await self.queue.dead_letter(message)
        else:
            await self.queue.ack(message)
        return final

    async def _give_up(self, job: Job, message: Message, why: str) -> str | None:
        final = await self._fail(job, f"Failed after {job.attempts - 1} attempts: {why}")
        await self.queue.dead_letter(message)
        return final

    async def _fail(self, job: Job, error: str) -> str | None:
        """Mark the job FAILED, if we still hold it: FAILED, or None if another worker has it."""
        if not await jobs_db.finish(self.pool, job.id, self.owner, JobStatus.FAILED, error):
            return None
        await settle_video(self.ctx, job)
        log.warning("job %d: FAILED: %s", job.id, error)
        return JobStatus.FAILED

    async def sweep(self) -> None:
        """Re-send jobs whose message may be lost, so no job stays PENDING forever."""
        older_than = max(600.0, 5 * self.lease_seconds)
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), SWEEP_SECONDS)
                return
            try:
                for job_id in await jobs_db.stale_job_ids(self.pool, older_than):
                    log.warning(
                        "job %d: no progress for %.0f s; sending it again", job_id, older_than
                    )
                    await self.queue.send(job_id)
            except Exception:
                log.exception("job sweep failed; next one in %.0f s", SWEEP_SECONDS)


class StopReason(enum.Enum):
    """Why a keeper stopped its job (a pool shutting down stops it without one)."""

    CANCEL = "cancel"  # the user asked
    LEASE_LOST = "lease lost"  # another worker took the job over


class Supervisor:
    """Keeps one running job's lease and message alive, and stops it when it must stop."""

    def __init__(self, pool: WorkerPool, job: Job, message: Message) -> None:
        self.workers = pool
        self.job = job
        self.message = message
        self.progress: int | None = None
        self.stop_reason: StopReason | None = None

    def report_progress(self, progress: int) -> None:
        self.progress = progress

    async def keep_alive(self, main: asyncio.Task[None]) -> None:
        lease = self.workers.lease_seconds
        # The message is hidden for the lease, renewed every third of it (SQS bills each call):
        # should this worker die, it comes back at most as the lease lapses, and a worker that
        # gets it while the lease still runs hands it back until then (`_not_claimable`). So a
        # dead worker's job is taken again one lease after its last heartbeat, plus a poll.
        hidden = min(math.ceil(lease), MAX_VISIBILITY_SECONDS)
        extended_at = time.monotonic()  # the receive, a moment ago, hid it for the lease
        while not main.done():
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                cancel = await jobs_db.heartbeat(
                    self.workers.pool, self.job.id, self.workers.owner, lease, self.progress
                )
                if time.monotonic() - extended_at > lease / 3:
                    await self.workers.queue.extend(self.message, hidden)
                    extended_at = time.monotonic()
            except Exception:
                # The lease is long; a database or queue hiccup is survived by the next beat.
                log.warning("job %d: heartbeat failed", self.job.id, exc_info=True)
                continue
            if cancel is None and await self._completed():
                return  # its last steps (after the commit) run to their end
            if cancel is None or cancel:
                self.stop_reason = StopReason.LEASE_LOST if cancel is None else StopReason.CANCEL
                main.cancel()
                return

    async def _completed(self) -> bool:
        """Whether the job is COMPLETED: a beat between its commit and the end of its run finds
        no lease to renew, yet nothing was lost (should another worker have completed it, this
        one's own commit fails and it stops there)."""
        try:
            job = await jobs_db.get_job(self.workers.pool, self.job.id)
        except Exception:
            return False
        return job is not None and job.status == JobStatus.COMPLETED


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def worker_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the pool (and the sweep) while the app runs; on shutdown, stop it gracefully."""
    config = app[keys.CONFIG]
    if config.transcode.workers == 0:
        log.info("transcode.workers = 0: this process runs no jobs")
        yield
        return
    context = StepContext(
        config=config,
        pool=app[keys.DB],
        storage=app[keys.STORAGE],
        gallery=app[keys.GALLERY],
        binaries=app[keys.FFMPEG],
        owner=worker_id(),
        report_progress=lambda _: None,
        metrics=app[keys.METRICS],
        queue=app[keys.QUEUE],
    )
    workers = WorkerPool(config, context, app[keys.QUEUE])
    app[keys.WORKERS] = workers
    reclaim = reclaim_periodically(
        workers.workdirs, context.pool, workers.stopping, workers.report_reclaimed
    )
    tasks = [
        asyncio.create_task(workers.run()),
        asyncio.create_task(workers.sweep()),
        asyncio.create_task(reclaim),
    ]
    log.info("worker %s: %d slot(s)", context.owner, config.transcode.workers)
    try:
        yield
    finally:
        await workers.stop(config.transcode.shutdown_grace)
        # The loops notice `stopping` within one long-poll; cancel only what is still stuck.
        _, stuck = await asyncio.wait(tasks, timeout=RECEIVE_WAIT_SECONDS + 1)
        for task in stuck:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
