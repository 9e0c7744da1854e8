"""The storage sweep (reclaim objects no database row refers to) and the per-user usage report.

Two key families are ours. Originals, `gallery/{userId}/...`, are needed while a video or any job
refers to them, or while their upload URL is younger than a day. Job outputs,
`videos/output/{jobId}/...` (`videoforge.storage.layout`), are needed while their job exists,
or while a video still shows one of them. Any other key belongs to someone else and is never
touched.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from videoforge.db import jobs as jobs_db
from videoforge.db import uploads as uploads_db
from videoforge.db import videos as videos_db
from videoforge.db.types import Executor
from videoforge.db.videos import Usage, UsageTotals
from videoforge.errors import InvalidKey
from videoforge.storage import ObjectInfo, Storage, validate_key
from videoforge.storage.layout import OUTPUTS, OutputLayout
from videoforge.support.concurrency import gather_bounded
from videoforge.support.paging import row_offset

ORIGINALS = "gallery/"  # videoforge.gallery.naming.upload_key
UPLOAD_GRACE = timedelta(hours=24)
BATCH_SIZE = 1000
DELETE_CONCURRENCY = 8
REPORTED_ORPHANS = 100

UNCONFIRMED_UPLOAD = "unconfirmed upload"
DELETED_VIDEO = "deleted video"
DELETED_JOB = "deleted job"

_ORIGINAL = re.compile(r"gallery/[^/]+/.+", re.DOTALL)


@dataclass(frozen=True)
class Orphan:
    key: str
    size: int
    reason: str


@dataclass
class SweepReport:
    """What a sweep found (and, unless a dry run, deleted); `orphans` holds the first 100."""

    dry_run: bool
    count: int = 0
    bytes: int = 0
    orphans: list[Orphan] = field(default_factory=list)

    def add(self, orphans: Sequence[Orphan]) -> None:
        self.count += len(orphans)
        self.bytes += sum(orphan.size for orphan in orphans)
        room = REPORTED_ORPHANS - len(self.orphans)
        self.orphans.extend(orphans[: max(room, 0)])


@dataclass(frozen=True)
class UsageReport:
    users: list[Usage]
    totals: UsageTotals


Finder = Callable[[Executor, list[ObjectInfo]], Awaitable[list[Orphan]]]


def is_original(key: str) -> bool:
    """True for an upload's key, `gallery/{userId}/{name}`."""
    return _ORIGINAL.fullmatch(key) is not None and _is_valid(key)


def output_job_id(key: str) -> int | None:
    """The job id in an output key, `videos/output/{jobId}/...`; None if the key is not one."""
    layout = OutputLayout.of_key(key)
    if layout is None or not _is_valid(key):
        return None
    return layout.job_id


def original_orphan_reason(
    referenced: bool, uploaded_at: datetime | None, abandoned_before: datetime
) -> str | None:
    """Why an original is an orphan; None while a row still needs it."""
    if referenced:
        return None
    if uploaded_at is None:
        return DELETED_VIDEO
    return UNCONFIRMED_UPLOAD if uploaded_at < abandoned_before else None


def upload_grace(presign_ttl: int) -> timedelta:
    """How long an unconfirmed upload is left alone: a day, or longer if its URL lives longer
    (an upload may start at the last moment its URL is valid)."""
    return max(UPLOAD_GRACE, timedelta(seconds=presign_ttl))


async def sweep(
    pool: asyncpg.Pool, storage: Storage, *, dry_run: bool, grace: timedelta = UPLOAD_GRACE
) -> SweepReport:
    """Find every object of ours that no row refers to and, unless `dry_run`, delete it."""
    # Fixed once: the uploads pruned at the end are exactly those this sweep judged abandoned.
    cutoff = await uploads_db.abandoned_before(pool, grace)
    finders: dict[str, Finder] = {
        ORIGINALS: functools.partial(_orphaned_originals, abandoned_before=cutoff),
        OUTPUTS: _orphaned_outputs,
    }
    report = SweepReport(dry_run)
    for prefix, find in finders.items():
        async for batch in _batches(storage.list(prefix), BATCH_SIZE):
            async with _snapshot(pool) as conn:
                orphans = await find(conn, batch)
            report.add(orphans)
            if not dry_run:
                await _delete(storage, orphans)
    if not dry_run:
        await uploads_db.delete_uploads_before(pool, cutoff)
    return report


async def usage_report(pool: asyncpg.Pool, page: int, limit: int) -> UsageReport:
    """A page of users by stored bytes, largest first, with everybody's totals."""
    offset = row_offset(page, limit)
    async with _snapshot(pool) as conn:  # the page and the totals agree
        users = await videos_db.usage_by_user(conn, limit, offset)
        return UsageReport(users, await videos_db.usage_totals(conn))


async def _orphaned_originals(
    db: Executor, batch: list[ObjectInfo], *, abandoned_before: datetime
) -> list[Orphan]:
    objects = [info for info in batch if is_original(info.key)]
    if not objects:
        return []
    keys = [info.key for info in objects]
    uploaded = await uploads_db.upload_times(db, keys)
    referenced = await videos_db.referenced_keys(db, keys)
    referenced |= await jobs_db.referenced_sources(db, keys)
    orphans = []
    for info in objects:
        reason = original_orphan_reason(
            info.key in referenced, uploaded.get(info.key), abandoned_before
        )
        if reason is not None:
            orphans.append(Orphan(info.key, info.size, reason))
    return orphans


async def _orphaned_outputs(db: Executor, batch: list[ObjectInfo]) -> list[Orphan]:
    job_ids = {
        info.key: job_id for info in batch if (job_id := output_job_id(info.key)) is not None
    }
    alive = await jobs_db.existing_ids(db, sorted(set(job_ids.values())))
    candidates = [info for info in batch if info.key in job_ids and job_ids[info.key] not in alive]
    if not candidates:
        return []
    # A video keeps showing the thumbnail and preview of a job an admin deleted.
    shown = await videos_db.referenced_keys(db, [info.key for info in candidates])
    return [
        Orphan(info.key, info.size, DELETED_JOB) for info in candidates if info.key not in shown
    ]


@contextlib.asynccontextmanager
async def _snapshot(pool: asyncpg.Pool) -> AsyncIterator[Executor]:
    """Reads that see one instant: a confirm moves a key from `uploads` to `gallery_videos`,
    and a key read between the two must not look unreferenced."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        yield conn


async def _batches(
    objects: AsyncIterator[ObjectInfo], size: int
) -> AsyncIterator[list[ObjectInfo]]:
    batch: list[ObjectInfo] = []
    async for info in objects:
        batch.append(info)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _delete(storage: Storage, orphans: Sequence[Orphan]) -> None:
    await gather_bounded([orphan.key for orphan in orphans], storage.delete, DELETE_CONCURRENCY)


def _is_valid(key: str) -> bool:
    # We never write a key the storage layer refuses; someone else did, so it is theirs (and
    # deleting it would fail the whole sweep).
    try:
        validate_key(key)
    except InvalidKey:
        return False
    return True
