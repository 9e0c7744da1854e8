"""The jobs table's leases, against a real database: claim, fencing, cancel, finish, sweep."""

from __future__ import annotations

import asyncpg
import pytest

from videoforge.db import jobs as jobs_db
from videoforge.db import videos as videos_db
from videoforge.db.jobs import Job
from videoforge.model import JobStatus

A = "host-a:1:aaaa"
B = "host-b:2:bbbb"
LEASE = 30.0
OLDER_THAN = 600.0


async def _pending(pool: asyncpg.Pool) -> Job:
    return await jobs_db.insert_job(
        pool,
        user_id="alice",
        input_source="gallery/alice/1700000000000-clip.mp4",
        qualities=["medium", "low"],
        gallery_video_id=None,
    )


async def _running(pool: asyncpg.Pool, owner: str = A) -> Job:
    """A job claimed by `owner` (DOWNLOADING, attempt 1)."""
    job = await jobs_db.claim(pool, (await _pending(pool)).id, owner, LEASE)
    assert job is not None
    return job


async def _job(pool: asyncpg.Pool, job_id: int) -> Job:
    job = await jobs_db.get_job(pool, job_id)
    assert job is not None
    return job


async def _expire_lease(pool: asyncpg.Pool, job_id: int, seconds_ago: float = 1.0) -> None:
    await pool.execute(
        "UPDATE jobs SET lease_expires_at = now() - make_interval(secs => $2) WHERE id = $1",
        job_id,
        seconds_ago,
    )


async def _backdate(pool: asyncpg.Pool, job_id: int, seconds_ago: float) -> None:
    """Pretend nothing touched the job for `seconds_ago` (its trigger would reset updated_at)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE jobs DISABLE TRIGGER jobs_set_updated_at")
        await conn.execute(
            "UPDATE jobs SET updated_at = now() - make_interval(secs => $2) WHERE id = $1",
            job_id,
            seconds_ago,
        )
        await conn.execute("ALTER TABLE jobs ENABLE TRIGGER jobs_set_updated_at")


# --- claim and fencing ---------------------------------------------------------------------------


async def test_claim_of_pending_job_takes_a_lease_that_refuses_another_owner(
    db_pool: asyncpg.Pool,
) -> None:
    job = await _pending(db_pool)
    assert (job.status, job.attempts, job.lease_owner) == ("PENDING", 0, None)

    claimed = await jobs_db.claim(db_pool, job.id, A, LEASE)

    assert claimed is not None
    assert (claimed.status, claimed.attempts, claimed.lease_owner) == ("DOWNLOADING", 1, A)
    assert claimed.lease_expires_at is not None and claimed.started_at is not None
    assert await jobs_db.claim(db_pool, job.id, B, LEASE) is None
    assert (await _job(db_pool, job.id)).lease_owner == A


async def test_claim_after_lease_lapsed_goes_to_new_owner_and_fences_the_old_one(
    db_pool: asyncpg.Pool,
) -> None:
    job = await _running(db_pool, A)
    assert await jobs_db.update_running(db_pool, job.id, A, status="PROCESSING", progress=40)
    await _expire_lease(db_pool, job.id)

    taken = await jobs_db.claim(db_pool, job.id, B, LEASE)

    assert taken is not None
    assert (taken.status, taken.attempts, taken.lease_owner, taken.progress) == (
        "DOWNLOADING",
        2,
        B,
        0,
    )
    # Every write of the old owner now matches no row.
    assert await jobs_db.heartbeat(db_pool, job.id, A, LEASE, 50) is None
    assert await jobs_db.update_running(db_pool, job.id, A, status="UPLOADING") is False
    assert await jobs_db.finish(db_pool, job.id, A, "COMPLETED") is None
    assert await jobs_db.release(db_pool, job.id, A, "interrupted") is False
    after = await _job(db_pool, job.id)
    assert (after.status, after.attempts, after.lease_owner, after.progress) == (
        "DOWNLOADING",
        2,
        B,
        0,
    )
    # ... while the new owner's still land.
    assert await jobs_db.heartbeat(db_pool, job.id, B, LEASE, 20) is False
    assert (await _job(db_pool, job.id)).progress == 20


async def test_lease_seconds_left_is_that_of_a_running_job_and_zero_once_lapsed(
    db_pool: asyncpg.Pool,
) -> None:
    running, lapsed, pending = (
        await _running(db_pool),
        await _running(db_pool),
        await _pending(db_pool),
    )
    await _expire_lease(db_pool, lapsed.id)

    left = await jobs_db.lease_seconds_left(db_pool, running.id)

    assert left is not None and LEASE - 5 < left <= LEASE
    # Lapsed since a claim found it live: the message comes back at once, not dropped.
    assert await jobs_db.lease_seconds_left(db_pool, lapsed.id) == 0
    assert await jobs_db.lease_seconds_left(db_pool, pending.id) is None
    assert await jobs_db.lease_seconds_left(db_pool, 999_999) is None


async def test_claim_of_cancel_requested_or_final_job_returns_none(db_pool: asyncpg.Pool) -> None:
    flagged = await _running(db_pool, A)
    await jobs_db.request_cancel(db_pool, flagged.id)
    await _expire_lease(db_pool, flagged.id)
    done = await _running(db_pool, A)
    await jobs_db.finish(db_pool, done.id, A, "COMPLETED")

    assert await jobs_db.claim(db_pool, flagged.id, B, LEASE) is None
    assert await jobs_db.claim(db_pool, done.id, B, LEASE) is None


# --- cancel --------------------------------------------------------------------------------------


async def test_heartbeat_after_cancel_request_on_running_job_returns_true(
    db_pool: asyncpg.Pool,
) -> None:
    job = await _running(db_pool, A)
    assert await jobs_db.heartbeat(db_pool, job.id, A, LEASE) is False

    flagged = await jobs_db.request_cancel(db_pool, job.id)

    assert flagged is not None
    assert (flagged.status, flagged.cancel_requested) == ("DOWNLOADING", True)
    assert await jobs_db.heartbeat(db_pool, job.id, A, LEASE) is True


async def test_request_cancel_of_pending_job_ends_it_cancelled_at_once(
    db_pool: asyncpg.Pool,
) -> None:
    job = await _pending(db_pool)

    cancelled = await jobs_db.request_cancel(db_pool, job.id)

    assert cancelled is not None
    assert (cancelled.status, cancelled.cancel_requested) == ("CANCELLED", True)
    assert cancelled.completed_at is not None


@pytest.mark.parametrize("status", ["COMPLETED", "FAILED", "CANCELLED"])
async def test_request_cancel_of_final_job_returns_none_and_changes_nothing(
    db_pool: asyncpg.Pool, status: str
) -> None:
    job = await _running(db_pool, A)
    finished = await jobs_db.finish(db_pool, job.id, A, status)
    assert finished is not None

    assert await jobs_db.request_cancel(db_pool, job.id) is None
    after = await _job(db_pool, job.id)
    assert (after.status, after.cancel_requested) == (status, False)


async def test_cancel_abandoned_ends_cancel_requested_job_only_once_its_lease_lapsed(
    db_pool: asyncpg.Pool,
) -> None:
    job = await _running(db_pool, A)
    await jobs_db.request_cancel(db_pool, job.id)
    assert await jobs_db.cancel_abandoned(db_pool, job.id) is None  # its worker may still stop it

    await _expire_lease(db_pool, job.id)
    cancelled = await jobs_db.cancel_abandoned(db_pool, job.id)

    assert cancelled is not None
    assert (cancelled.status, cancelled.lease_owner, cancelled.lease_expires_at) == (
        "CANCELLED",
        None,
        None,
    )
    assert cancelled.completed_at is not None


async def test_cancel_abandoned_of_job_without_cancel_request_returns_none(
    db_pool: asyncpg.Pool,
) -> None:
    job = await _running(db_pool, A)
    await _expire_lease(db_pool, job.id)

    assert await jobs_db.cancel_abandoned(db_pool, job.id) is None
    assert (await _job(db_pool, job.id)).status == "DOWNLOADING"


# --- finish and release --------------------------------------------------------------------------


async def test_finish_completed_sets_progress_100_and_completed_at(db_pool: asyncpg.Pool) -> None:
    job = await _running(db_pool, A)
    await jobs_db.update_running(db_pool, job.id, A, status="UPLOADING", progress=95)

    done = await jobs_db.finish(db_pool, job.id, A, "COMPLETED")

    assert done is not None
    assert (done.status, done.progress, done.error_text) == ("COMPLETED", 100, None)
    assert (done.lease_owner, done.lease_expires_at) == (None, None)
    assert done.completed_at is not None


async def test_finish_failed_keeps_progress_and_records_the_error(db_pool: asyncpg.Pool) -> None:
    job = await _running(db_pool, A)
    await jobs_db.update_running(db_pool, job.id, A, status="PROCESSING", progress=37)

    failed = await jobs_db.finish(db_pool, job.id, A, "FAILED", "Transcoding failed: boom")

    assert failed is not None
    assert (failed.status, failed.progress, failed.error_text) == (
        "FAILED",
        37,
        "Transcoding failed: boom",
    )
    assert failed.completed_at is not None
    assert failed.lease_owner is None


async def test_finish_with_a_running_status_is_refused(db_pool: asyncpg.Pool) -> None:
    job = await _running(db_pool, A)
    with pytest.raises(ValueError, match="not a final status"):
        await jobs_db.finish(db_pool, job.id, A, "PENDING")


@pytest.mark.parametrize(("refund", "attempts"), [(True, 0), (False, 1)])
async def test_release_returns_job_to_pending_refunding_the_attempt_only_when_asked(
    db_pool: asyncpg.Pool, refund: bool, attempts: int
) -> None:
    job = await _running(db_pool, A)
    await jobs_db.update_running(db_pool, job.id, A, status="PROCESSING", progress=50)

    assert await jobs_db.release(db_pool, job.id, A, "interrupted", refund_attempt=refund)

    after = await _job(db_pool, job.id)
    assert (after.status, after.attempts, after.progress, after.error_text) == (
        "PENDING",
        attempts,
        0,
        "interrupted",
    )
    assert (after.lease_owner, after.lease_expires_at) == (None, None)
    again = await jobs_db.claim(db_pool, job.id, B, LEASE)
    assert again is not None and again.attempts == attempts + 1


# --- the sweep -----------------------------------------------------------------------------------


async def test_stale_job_ids_returns_untouched_pending_job_once_then_waits_a_period(
    db_pool: asyncpg.Pool,
) -> None:
    stale = await _pending(db_pool)
    fresh = await _pending(db_pool)
    await _backdate(db_pool, stale.id, OLDER_THAN + 60)

    assert await jobs_db.stale_job_ids(db_pool, OLDER_THAN) == [stale.id]
    assert await jobs_db.stale_job_ids(db_pool, OLDER_THAN) == []  # touched by the first call
    assert (await _job(db_pool, fresh.id)).status == "PENDING"


async def test_stale_job_ids_returns_running_job_only_once_its_lease_lapsed_long_ago(
    db_pool: asyncpg.Pool,
) -> None:
    recent = await _running(db_pool, A)
    await _expire_lease(db_pool, recent.id, seconds_ago=5)
    await _backdate(db_pool, recent.id, OLDER_THAN + 60)
    abandoned = await _running(db_pool, A)
    await _expire_lease(db_pool, abandoned.id, seconds_ago=OLDER_THAN + 60)
    await _backdate(db_pool, abandoned.id, OLDER_THAN + 60)

    assert await jobs_db.stale_job_ids(db_pool, OLDER_THAN) == [abandoned.id]


async def test_stale_job_ids_never_returns_final_or_cancel_requested_jobs(
    db_pool: asyncpg.Pool,
) -> None:
    ids = []
    for status in ("COMPLETED", "FAILED", "CANCELLED"):
        job = await _running(db_pool, A)
        await jobs_db.finish(db_pool, job.id, A, status)
        ids.append(job.id)
    pending_cancelled = await _pending(db_pool)
    await jobs_db.request_cancel(db_pool, pending_cancelled.id)
    flagged = await _running(db_pool, A)
    await jobs_db.request_cancel(db_pool, flagged.id)
    await _expire_lease(db_pool, flagged.id, seconds_ago=OLDER_THAN + 60)
    for job_id in [*ids, pending_cancelled.id, flagged.id]:
        await _backdate(db_pool, job_id, OLDER_THAN + 60)

    assert await jobs_db.stale_job_ids(db_pool, OLDER_THAN) == []


# --- admin cleanup -------------------------------------------------------------------------------


async def test_cleanup_keeps_jobs_whose_outputs_a_video_still_shows(
    db_pool: asyncpg.Pool,
) -> None:
    current, older, unused = [(await _pending(db_pool)).id for _ in range(3)]
    await db_pool.execute(
        """
        UPDATE jobs SET status = 'COMPLETED', completed_at = now() - interval '90 days'
        WHERE id = ANY($1::bigint[])
        """,
        [current, older, unused],
    )
    # The video's current job failed to replace the thumbnail and preview of an older job.
    await db_pool.execute(
        """
        INSERT INTO gallery_videos (user_id, title, s3_key, job_id, thumbnail_key, preview_key)
        VALUES ('alice', 'clip', 'gallery/alice/1-clip.mp4', $1, $2, $3)
        """,
        current,
        f"videos/output/{older}/thumbnail.jpg",
        f"videos/output/{older}/preview.gif",
    )
    cutoff = await db_pool.fetchval("SELECT now() - interval '30 days'")

    assert await jobs_db.delete_ended_before(db_pool, cutoff, 100) == [unused]
    assert await jobs_db.existing_ids(db_pool, [current, older, unused]) == {current, older}


async def test_a_job_the_video_has_replaced_cannot_change_the_video(
    db_pool: asyncpg.Pool,
) -> None:
    video_id = await db_pool.fetchval(
        """
        INSERT INTO gallery_videos (user_id, title, s3_key)
        VALUES ('alice', 'clip', 'gallery/alice/1-clip.mp4')
        RETURNING id
        """
    )
    older, current = [
        (
            await jobs_db.insert_job(
                db_pool,
                user_id="alice",
                input_source="gallery/alice/1-clip.mp4",
                qualities=["low"],
                gallery_video_id=video_id,
            )
        ).id
        for _ in range(2)
    ]
    assert await jobs_db.claim(db_pool, older, A, LEASE) is not None
    assert await jobs_db.finish(db_pool, older, A, JobStatus.FAILED) is not None
    changes = {"duration": 1.5}
    assert await videos_db.update_videos_of_jobs(db_pool, [older], changes) == [video_id]
    video = await videos_db.get_video(db_pool, video_id)
    assert video is not None
    # The newer job is still pending: the video is processing on it, the older one's metadata
    # not written.
    assert (video.status, video.job_id, video.duration) == ("processing", current, None)
