"""What a gallery video shows when it has several jobs, and cancelling jobs that have ended:
real worker, real ffmpeg, the PostgreSQL queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.errors_support import assert_error
from tests.fixtures.config import MakeConfig
from tests.gallery_support import ALICE, Gallery, StartGallery, expect
from tests.jobs_support import create_job, upload_clip, wait_for_job
from tests.media import Media
from videoforge.db import jobs as jobs_db
from videoforge.db import videos as videos_db
from videoforge.model import JobStatus


@pytest.fixture
async def gallery(start_gallery: StartGallery, make_config: MakeConfig) -> Gallery:
    config = make_config(queue={"poll_interval": 0.2}, limits={"max_active_jobs": 10})
    return await start_gallery(config)


async def cancel(gallery: Gallery, job_id: int) -> dict[str, Any]:
    response = await gallery.request("POST", f"/api/jobs/{job_id}/cancel", ALICE)
    job: dict[str, Any] = (await expect(response, 200))["job"]
    return job


async def assert_ready_on(gallery: Gallery, video_id: int, job_id: int) -> None:
    """The video is `ready` on this job, with its thumbnail, and plays that job's HLS."""
    details = await expect(await gallery.details(video_id, ALICE), 200)
    assert (details["status"], details["jobId"]) == ("ready", job_id)
    assert details["thumbnailUrl"] is not None
    stream = await expect(await gallery.stream(video_id, ALICE), 200)
    assert stream["playable"] is True
    assert stream["hlsUrl"]


async def test_a_re_transcode_keeps_the_video_playable_and_cancelled_leaves_it_so(
    gallery: Gallery, media: Media
) -> None:
    clip = media.clip("long", 1280, 720, seconds=20)
    video = await upload_clip(gallery, ALICE, clip, transcode=["low"])
    await wait_for_job(gallery, ALICE, video["jobId"])
    # Every rendition: it runs long enough for the cancel to find it still encoding.
    again = await create_job(
        gallery, ALICE, video["s3Key"], outputFormats=["high", "medium", "low"]
    )
    await wait_for_job(gallery, ALICE, again["id"], ("PROCESSING",))
    # While it encodes, the video still plays what the first job made.
    await assert_ready_on(gallery, video["id"], video["jobId"])
    await cancel(gallery, again["id"])
    await wait_for_job(gallery, ALICE, again["id"], ("CANCELLED",))
    await assert_ready_on(gallery, video["id"], video["jobId"])


async def test_newer_jobs_cancelled_while_pending_do_not_hide_the_running_one(
    gallery: Gallery, media: Media
) -> None:
    clip = media.clip("long", 1280, 720, seconds=20)
    video = await upload_clip(gallery, ALICE, clip, transcode=["low"])
    running = video["jobId"]
    await wait_for_job(gallery, ALICE, running, ("PROCESSING",))
    for _ in range(4):  # the only worker is busy: each stays PENDING until cancelled
        newer = await create_job(gallery, ALICE, video["s3Key"], outputFormats=["low"])
        assert (await cancel(gallery, newer["id"]))["status"] == "CANCELLED"
    await wait_for_job(gallery, ALICE, running)
    await assert_ready_on(gallery, video["id"], running)


async def test_a_pending_cancel_with_nothing_finished_puts_the_video_back_to_uploaded(
    start_gallery: StartGallery, make_config: MakeConfig, media: Media
) -> None:
    gallery = await start_gallery(make_config(transcode={"workers": 0}))  # nobody takes it
    video = await upload_clip(gallery, ALICE, media.landscape(), transcode=["low"])
    queued = await expect(await gallery.details(video["id"], ALICE), 200)
    assert (queued["status"], queued["jobId"]) == ("processing", video["jobId"])
    assert (await cancel(gallery, video["jobId"]))["status"] == "CANCELLED"
    details = await expect(await gallery.details(video["id"], ALICE), 200)
    assert details["status"] == "uploaded"


async def test_cancel_of_an_ended_job_is_409_naming_its_status(
    gallery: Gallery, media: Media
) -> None:
    # CANCELLED: see test_cancel_of_a_pending_job_ends_it_at_once (200, then 409).
    completed = await upload_clip(gallery, ALICE, media.landscape(), transcode=["low"])
    failed = await upload_clip(gallery, ALICE, media.corrupt(), transcode=["low"])
    for status, job_id in (("COMPLETED", completed["jobId"]), ("FAILED", failed["jobId"])):
        await wait_for_job(gallery, ALICE, job_id, (status,))
        response = await gallery.request("POST", f"/api/jobs/{job_id}/cancel", ALICE)
        await assert_error(response, 409, f"Job is already {status}")
        job = await expect(await gallery.request("GET", f"/api/jobs/{job_id}", ALICE), 200)
        assert job["job"]["status"] == status


# --- the rule, on the database: jobs claimed and finished as a worker does ---------------------

OWNER = "host-a:1:aaaa"


async def _video(pool: asyncpg.Pool) -> int:
    video = await videos_db.insert_video(
        pool,
        user_id="alice",
        title="clip",
        description="",
        s3_key="gallery/alice/1700000000000-clip.mp4",
        visibility="public",
        content_type="video/mp4",
        file_size=1000,
    )
    return video.id


async def _job(pool: asyncpg.Pool, video_id: int) -> int:
    """A new job of the video, claimed by a worker (which marks the video as a worker does)."""
    job = await jobs_db.insert_job(
        pool,
        user_id="alice",
        input_source="gallery/alice/1700000000000-clip.mp4",
        qualities=["low"],
        gallery_video_id=video_id,
    )
    assert await jobs_db.claim(pool, job.id, OWNER, 30.0) is not None
    await videos_db.update_videos_of_jobs(pool, [job.id])
    return job.id


async def _finish(pool: asyncpg.Pool, job_id: int, status: JobStatus) -> None:
    assert await jobs_db.finish(pool, job_id, OWNER, status) is not None
    await videos_db.update_videos_of_jobs(pool, [job_id])


async def _shown(pool: asyncpg.Pool, video_id: int) -> tuple[str, int | None]:
    video = await videos_db.get_video(pool, video_id)
    assert video is not None
    return video.status, video.job_id


async def test_a_job_completing_while_a_newer_one_runs_shows_until_the_newer_completes(
    db_pool: asyncpg.Pool,
) -> None:
    video_id = await _video(db_pool)
    older, newer = await _job(db_pool, video_id), await _job(db_pool, video_id)
    assert await _shown(db_pool, video_id) == ("processing", newer)
    await _finish(db_pool, older, JobStatus.COMPLETED)
    assert await _shown(db_pool, video_id) == ("ready", older)
    await _finish(db_pool, newer, JobStatus.COMPLETED)
    assert await _shown(db_pool, video_id) == ("ready", newer)


async def test_a_re_transcode_shows_only_once_it_completes(db_pool: asyncpg.Pool) -> None:
    video_id = await _video(db_pool)
    first = await _job(db_pool, video_id)
    await _finish(db_pool, first, JobStatus.COMPLETED)
    second = await _job(db_pool, video_id)
    assert await _shown(db_pool, video_id) == ("ready", first)
    await _finish(db_pool, second, JobStatus.COMPLETED)
    assert await _shown(db_pool, video_id) == ("ready", second)


async def test_a_failed_re_transcode_goes_back_to_the_completed_job(
    db_pool: asyncpg.Pool,
) -> None:
    video_id = await _video(db_pool)
    first = await _job(db_pool, video_id)
    await _finish(db_pool, first, JobStatus.FAILED)
    assert await _shown(db_pool, video_id) == ("failed", first)
    second = await _job(db_pool, video_id)
    await _finish(db_pool, second, JobStatus.COMPLETED)
    third = await _job(db_pool, video_id)
    await _finish(db_pool, third, JobStatus.FAILED)
    assert await _shown(db_pool, video_id) == ("ready", second)


async def test_cleanup_keeps_the_completed_job_a_video_would_go_back_to(
    db_pool: asyncpg.Pool,
) -> None:
    video_id = await _video(db_pool)
    completed = await _job(db_pool, video_id)
    await _finish(db_pool, completed, JobStatus.COMPLETED)
    running = await _job(db_pool, video_id)  # a re-transcode: the video still shows `completed`
    await db_pool.execute("UPDATE jobs SET completed_at = now() - interval '30 days'")
    later = datetime.now(UTC) + timedelta(days=1)
    assert await jobs_db.delete_ended_before(db_pool, later, 100) == []
    assert await jobs_db.existing_ids(db_pool, [completed, running]) == {completed, running}
