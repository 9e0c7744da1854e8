"""The storage sweep (reclaim objects no database row refers to) and the per-user usage report.

Two key families are ours. Originals, `gallery/{userId}/...`, are needed while a video or any job
refers to them, or while their upload URL is younger than a day. Job outputs,
`videos/output/{jobId}/...` (`videoforge.storage.layout`), are needed while their job exists,
or while a video still shows one of them; a chunked job's chunk files only until the job ends for
good (COMPLETED or CANCELLED: a FAILED job keeps them, a restart reuses them). A multipart upload
to an original's key is abandoned once it is as old as an unconfirmed upload may be: aborted, its
invisible parts stop costing.
Any other key belongs to someone else and is never touched.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

import asyncpg

from videoforge.db import jobs as jobs_db
from videoforge.db import uploads as uploads_db
from videoforge.db import videos as videos_db
from videoforge.db.types import Executor
from videoforge.db.videos import Usage, UsageTotals
from videoforge.errors import InvalidKey
from videoforge.storage import ObjectInfo, Storage, validate_key
from videoforge.storage.layout import OUTPUTS, OutputLayout
from videoforge.storage.multipart import PendingUpload, UploadNotFound
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
FINISHED_JOB_CHUNK = "chunk of a finished job"

T = TypeVar("T")

_ORIGINAL = re.compile(r"gallery/[^/]+/.+", re.DOTALL)


@dataclass(frozen=True)
class Orphan:
    key: str
    size: int
    reason: str


@dataclass(frozen=True)
class AbandonedUpload:
    """A multipart upload left unfinished too long; `started` is when its row was made, or
    (with no row) when the store says it began."""

    key: str
    upload_id: str
    size: int
    started: datetime


@dataclass
class SweepReport:
    """What a sweep found (and, unless a dry run, deleted or aborted); `orphans` and
    `uploads` hold the first 100 of each. `count` and `bytes` are the objects' alone."""

    dry_run: bool
    count: int = 0
    bytes: int = 0
    orphans: list[Orphan] = field(default_factory=list)
    upload_count: int = 0
    upload_bytes: int = 0
    uploads: list[AbandonedUpload] = field(default_factory=list)

    def add(self, orphans: Sequence[Orphan]) -> None:
        self.count += len(orphans)
        self.bytes += sum(orphan.size for orphan in orphans)
        self.orphans.extend(orphans[: _room(self.orphans)])

    def add_uploads(self, uploads: Sequence[AbandonedUpload]) -> None:
        self.upload_count += len(uploads)
        self.upload_bytes += sum(upload.size for upload in uploads)
        self.uploads.extend(uploads[: _room(self.uploads)])


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
    layout = _output_layout(key)
    return None if layout is None else layout.job_id


def original_orphan_reason(
    referenced: bool, uploaded_at: datetime | None, abandoned_before: datetime
) -> str | None:
    """Why an original is an orphan; None while a row still needs it."""
    if referenced:
        return None
    if uploaded_at is None:
        return DELETED_VIDEO
    return UNCONFIRMED_UPLOAD if uploaded_at < abandoned_before else None


def abandoned_upload(
    pending: PendingUpload, recorded_at: datetime | None, abandoned_before: datetime
) -> AbandonedUpload | None:
    """The pending upload, if abandoned: dated by its row where it has one (S3's `Initiated`
    cannot be moved, the row can), else by the store; one neither dates is left alone."""
    started = recorded_at or pending.started
    if started is None or started >= abandoned_before:
        return None
    return AbandonedUpload(pending.key, pending.upload_id, pending.size, started)


def upload_grace(presign_ttl: int) -> timedelta:
    """How long an unconfirmed upload is left alone: a day, or longer if its URL lives longer
    (an upload may start at the last moment its URL is valid)."""
    return max(UPLOAD_GRACE, timedelta(seconds=presign_ttl))


async def sweep(
    pool: asyncpg.Pool, storage: Storage, *, dry_run: bool, grace: timedelta = UPLOAD_GRACE
) -> SweepReport:
    """Find every object of ours that no row refers to, and every multipart upload of ours
    left unfinished past the grace; unless `dry_run`, delete the objects, abort the uploads."""
    # Fixed once: the uploads pruned at the end are exactly those this sweep judged abandoned.
    cutoff = await uploads_db.abandoned_before(pool, grace)
    finders: dict[str, Finder] = {
        ORIGINALS: functools.partial(_orphaned_originals, abandoned_before=cutoff),
        OUTPUTS: _orphaned_outputs,
    }
    report = SweepReport(dry_run)
    async for uploads in _abandoned_uploads(pool, storage, cutoff):
        report.add_uploads(uploads if dry_run else await _abort(storage, uploads))
    for prefix, find in finders.items():
        async for batch in _batches(storage.list(prefix), BATCH_SIZE):
            async with _snapshot(pool) as conn:
                orphans = await find(conn, batch)
            report.add(orphans)
            if not dry_run:
                await _delete(storage, orphans)
    if not dry_run:
        # Multipart rows go too, whether their upload was aborted here or was gone already.
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
    layouts = {
        info.key: layout for info in batch if (layout := _output_layout(info.key)) is not None
    }
    alive = await jobs_db.existing_ids(db, sorted({layout.job_id for layout in layouts.values()}))
    chunked = {
        layout.job_id
        for key, layout in layouts.items()
        if layout.job_id in alive and layout.is_chunk_file(key)
    }
    settled = await jobs_db.settled_ids(db, sorted(chunked)) if chunked else set()
    reasons: dict[str, str] = {}
    for key, layout in layouts.items():
        if layout.job_id not in alive:
            reasons[key] = DELETED_JOB
        elif layout.job_id in settled and layout.is_chunk_file(key):
            reasons[key] = FINISHED_JOB_CHUNK
    if not reasons:
        return []
    # A video keeps showing the thumbnail and preview of a job an admin deleted.
    shown = await videos_db.referenced_keys(db, list(reasons))
    return [
        Orphan(info.key, info.size, reasons[info.key])
        for info in batch
        if info.key in reasons and info.key not in shown
    ]


async def _abandoned_uploads(
    pool: asyncpg.Pool, storage: Storage, abandoned_before: datetime
) -> AsyncIterator[list[AbandonedUpload]]:
    ours = (upload async for upload in storage.pending_uploads() if is_original(upload.key))
    async for batch in _batches(ours, BATCH_SIZE):
        recorded = await uploads_db.multipart_times(pool, [upload.upload_id for upload in batch])
        found = (
            abandoned_upload(upload, recorded.get(upload.upload_id), abandoned_before)
            for upload in batch
        )
        yield [upload for upload in found if upload is not None]


async def _abort(storage: Storage, uploads: Sequence[AbandonedUpload]) -> list[AbandonedUpload]:
    """Abort the uploads; those completed or aborted since they were listed are left out."""

    async def abort(upload: AbandonedUpload) -> bool:
        try:
            await storage.abort_multipart(upload.key, upload.upload_id)
        except UploadNotFound:
            return False
        return True

    aborted = await gather_bounded(uploads, abort, DELETE_CONCURRENCY)
    return [upload for upload, done in zip(uploads, aborted, strict=True) if done]


@contextlib.asynccontextmanager
async def _snapshot(pool: asyncpg.Pool) -> AsyncIterator[Executor]:
    """Reads that see one instant: a confirm moves a key from `uploads` to `gallery_videos`,
    and a key read between the two must not look unreferenced."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        yield conn


async def _batches(items: AsyncIterator[T], size: int) -> AsyncIterator[list[T]]:
    batch: list[T] = []
    async for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _delete(storage: Storage, orphans: Sequence[Orphan]) -> None:
    await gather_bounded([orphan.key for orphan in orphans], storage.delete, DELETE_CONCURRENCY)


def _room(reported: Sequence[object]) -> int:
    return max(REPORTED_ORPHANS - len(reported), 0)


def _output_layout(key: str) -> OutputLayout | None:
    layout = OutputLayout.of_key(key)
    return layout if layout is not None and _is_valid(key) else None


def _is_valid(key: str) -> bool:
    # We never write a key the storage layer refuses; someone else did, so it is theirs (and
    # deleting it would fail the whole sweep).
    try:
        validate_key(key)
    except InvalidKey:
        return False
    return True
