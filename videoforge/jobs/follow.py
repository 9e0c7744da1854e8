"""Following one job as it runs: its state now, then each change the database announces."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal

from videoforge.db import jobs as jobs_db
from videoforge.db.jobs import Job
from videoforge.db.listener import Wakeups
from videoforge.db.types import Executor

# A quiet job is looked up this often (the announcement may have been missed while the listener
# reconnected), and the caller hears of the quiet so it can keep its connection open.
QUIET_SECONDS = 15.0


@dataclass(frozen=True)
class JobChange:
    kind: Literal["status", "progress"]
    job: Job


async def follow(
    db: Executor, events: Wakeups, job: Job, quiet_seconds: float = QUIET_SECONDS
) -> AsyncGenerator[JobChange | None, None]:
    """The job's status now, then every change until a final status; None after each
    `quiet_seconds` without one."""
    await events.ensure()
    with events.subscribe(str(job.id)) as changes:
        job = await jobs_db.get_job(db, job.id) or job  # after subscribing: none missed
        yield JobChange("status", job)
        while not job.is_final:
            try:
                payload = await asyncio.wait_for(changes.get(), quiet_seconds)
            except TimeoutError:
                yield None
                payload = None
            changed = await _apply_change(db, job, payload)
            if changed is not None:
                kind: Literal["status", "progress"] = (
                    "status" if changed.status != job.status else "progress"
                )
                job = changed
                yield JobChange(kind, job)


async def _apply_change(db: Executor, job: Job, payload: str | None) -> Job | None:
    """The job after an announced change (None if it did not change); without an
    announcement, whatever the database says now."""
    if payload is None:
        fresh = await jobs_db.get_job(db, job.id)
        return fresh if fresh and _news(fresh) != _news(job) else None
    _, status, progress, chunks = payload.split(":")
    if (status, int(progress), int(chunks)) == _news(job):
        return None
    if status != job.status or job.chunks_total is None:  # metadata may have changed too
        job = await jobs_db.get_job(db, job.id) or job
    return dataclasses.replace(
        job, status=status, progress=int(progress), chunks_completed=int(chunks)
    )


def _news(job: Job) -> tuple[str, int, int]:
    """What a change announcement says of a job (migration 8 in schema.sql)."""
    return job.status, job.progress, job.chunks_completed
