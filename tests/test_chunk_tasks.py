"""Chunk tasks on the queue: the rows (claims, leases, fencing, retries, the plan a restart
keeps), their messages on both queues, and chunked jobs run end to end by several worker slots
on both queues and both storages.

Worker processes (a SIGKILL mid-chunk) are in `test_chunk_workers.py`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.fixtures.config import MakeConfig
from tests.gallery_support import ADMIN, ALICE, Gallery, StartGallery, expect
from tests.jobs_support import (
    asset_kinds,
    create_job,
    expected_outputs,
    get_job,
    sqs_queue_settings,
    upload_clip,
    wait_for_job,
)
from tests.media import Media, ffmpeg_children
from tests.worker_support import chunk_files_deleted, poll_until, poll_until_async
from videoforge import keys
from videoforge.db import chunks as chunks_db
from videoforge.db.chunks import PlannedChunk
from videoforge.db.migrations import migrate
from videoforge.jobs.chunk_tasks import describe_failure
from videoforge.model import ChunkStatus
from videoforge.queue.base import decode_body, encode_body

OWNER, OTHER = "host:1:aaaa", "host:2:bbbb"
LEASE = 30.0
PLAN = [
    PlannedChunk(0, 0.0, 8.0, False),
    PlannedChunk(1, 8.0, 8.0, False),
    PlannedChunk(2, 16.0, 9.5, True),
]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database_url, min_size=1, max_size=4) as pool:
        await migrate(pool)
        yield pool


async def _running_job(pool: asyncpg.Pool, status: str = "PROCESSING") -> int:
    job_id: int = await pool.fetchval(
        """
        INSERT INTO jobs (user_id, input_source, status, lease_owner, lease_expires_at)
        VALUES ('alice', 'gallery/alice/a.mp4', $1, 'parent', now() + interval '1 minute')
        RETURNING id
        """,
        status,
    )
    return job_id


async def _plan(pool: asyncpg.Pool, job_id: int, plan: list[PlannedChunk] = PLAN) -> list[Any]:
    async with pool.acquire() as conn, conn.transaction():
        return await chunks_db.plan(conn, job_id, plan, json.dumps({"duration": 25.5}))


async def _job_row(pool: asyncpg.Pool, job_id: int) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT chunks_total, chunks_completed, media_info FROM jobs WHERE id = $1", job_id
    )
    assert row is not None
    return row


# --- the rows ------------------------------------------------------------------------------


async def test_plan_writes_the_chunks_and_the_jobs_counts(pool: asyncpg.Pool) -> None:
    job_id = await _running_job(pool)
    tasks = await _plan(pool, job_id)
    assert [t.planned for t in tasks] == PLAN
    assert {t.status for t in tasks} == {ChunkStatus.PENDING}
    row = await _job_row(pool, job_id)
    assert (row["chunks_total"], row["chunks_completed"]) == (3, 0)
    assert json.loads(row["media_info"]) == {"duration": 25.5}


async def test_claim_next_takes_chunks_in_order_and_each_once(pool: asyncpg.Pool) -> None:
    job_id = await _running_job(pool)
    await _plan(pool, job_id)
    first = await chunks_db.claim_next(pool, job_id, OWNER, LEASE)
    second = await chunks_db.claim_next(pool, job_id, OTHER, LEASE)
    assert (first and first.index, second and second.index) == (0, 1)
    assert await chunks_db.claim(pool, job_id, 0, OTHER, LEASE) is None  # leased by OWNER
    assert first is not None and (first.status, first.attempts) == (ChunkStatus.RUNNING, 1)


async def test_concurrent_claims_never_hand_one_chunk_to_two_workers(
    pool: asyncpg.Pool,
) -> None:
    job_id = await _running_job(pool)
    await _plan(pool, job_id)
    owners = [f"host:{n}:x" for n in range(6)]
    claimed = await asyncio.gather(
        *(chunks_db.claim_next(pool, job_id, owner, LEASE) for owner in owners)
    )
    indexes = [task.index for task in claimed if task is not None]
    assert sorted(indexes) == [0, 1, 2]


async def test_a_lapsed_chunk_lease_is_taken_over_and_fences_out_its_old_holder(
    pool: asyncpg.Pool,
) -> None:
    job_id = await _running_job(pool)
    await _plan(pool, job_id)
    old = await chunks_db.claim(pool, job_id, 1, OWNER, 0.05)
    assert old is not None
    await asyncio.sleep(0.2)
    new = await chunks_db.claim(pool, job_id, 1, OTHER, LEASE)
    assert new is not None and new.attempts == 2
    assert await chunks_db.heartbeat(pool, old, OWNER, LEASE, 0.5) is None
    assert not await chunks_db.complete(pool, old, OWNER, "{}")
    assert not await chunks_db.fail(pool, old, OWNER, "late", None)
    assert await chunks_db.complete(pool, new, OTHER, "{}")
    row = await _job_row(pool, job_id)
    assert row["chunks_completed"] == 1


async def test_a_retried_chunk_waits_for_its_retry_time(pool: asyncpg.Pool) -> None:
    job_id = await _running_job(pool)
    await _plan(pool, job_id)
    task = await chunks_db.claim(pool, job_id, 0, OWNER, LEASE)
    assert task is not None
    assert await chunks_db.fail(pool, task, OWNER, "Failed to upload the chunk: 503", 60)
    assert await chunks_db.claim(pool, job_id, 0, OTHER, LEASE) is None
    left = await chunks_db.seconds_until_claimable(pool, job_id, 0)
    assert left is not None and 50 < left <= 60
    next_task = await chunks_db.claim_next(pool, job_id, OTHER, LEASE)
    assert next_task is not None and next_task.index == 1  # chunk 0 is skipped meanwhile


async def test_a_chunk_of_a_cancelled_job_stops_and_is_never_claimed(pool: asyncpg.Pool) -> None:
    job_id = await _running_job(pool)
    await _plan(pool, job_id)
    task = await chunks_db.claim(pool, job_id, 0, OWNER, LEASE)
    assert task is not None
    assert await chunks_db.heartbeat(pool, task, OWNER, LEASE, 0.25) is False
    await pool.execute("UPDATE jobs SET cancel_requested = true WHERE id = $1", job_id)
    assert await chunks_db.heartbeat(pool, task, OWNER, LEASE, 0.5) is True
    assert await chunks_db.claim_next(pool, job_id, OTHER, LEASE) is None
    assert await chunks_db.seconds_until_claimable(pool, job_id, 1) is None


async def test_a_shutdown_hands_the_chunk_back_with_its_attempt(pool: asyncpg.Pool) -> None:
    job_id = await _running_job(pool)
    await _plan(pool, job_id)
    task = await chunks_db.claim(pool, job_id, 2, OWNER, LEASE)
    assert task is not None and await chunks_db.release(pool, task, OWNER)
    again = await chunks_db.claim(pool, job_id, 2, OTHER, LEASE)
    assert again is not None and again.attempts == 1


async def test_a_new_attempt_keeps_completed_chunks_and_retries_failed_ones(
    pool: asyncpg.Pool,
) -> None:
    job_id = await _running_job(pool)
    await _plan(pool, job_id)
    done = await chunks_db.claim(pool, job_id, 0, OWNER, LEASE)
    failed = await chunks_db.claim(pool, job_id, 1, OWNER, LEASE)
    assert done is not None and failed is not None
    await chunks_db.complete(pool, done, OWNER, "{}")
    await chunks_db.fail(pool, failed, OWNER, "Transcoding failed: boom", None)

    tasks = await _plan(pool, job_id)  # the restart's plan: the same chunks
    assert [(t.status, t.attempts) for t in tasks] == [
        (ChunkStatus.COMPLETED, 1),
        (ChunkStatus.PENDING, 0),
        (ChunkStatus.PENDING, 0),
    ]
    assert (await _job_row(pool, job_id))["chunks_completed"] == 1


async def test_a_different_plan_replaces_the_chunks(pool: asyncpg.Pool) -> None:
    job_id = await _running_job(pool)
    await _plan(pool, job_id)
    done = await chunks_db.claim(pool, job_id, 0, OWNER, LEASE)
    assert done is not None and await chunks_db.complete(pool, done, OWNER, "{}")
    other = [PlannedChunk(0, 0.0, 12.0, False), PlannedChunk(1, 12.0, 13.5, True)]
    tasks = await _plan(pool, job_id, other)
    assert [t.planned for t in tasks] == other
    assert {t.status for t in tasks} == {ChunkStatus.PENDING}
    row = await _job_row(pool, job_id)
    assert (row["chunks_total"], row["chunks_completed"]) == (2, 0)


async def test_deleting_a_job_deletes_its_chunks(pool: asyncpg.Pool) -> None:
    job_id = await _running_job(pool)
    await _plan(pool, job_id)
    await pool.execute("DELETE FROM jobs WHERE id = $1", job_id)
    assert await chunks_db.chunks_of(pool, job_id) == []


def test_a_failed_chunk_is_described_by_its_place_and_time_range() -> None:
    task = chunks_db.ChunkTask(7, 6, 360.0, 60.0, False, "FAILED", 0.0, 3, None, "Boom")
    assert describe_failure(task, 60) == "chunk 7 of 60 (6:00-7:00): Boom"
    late = chunks_db.ChunkTask(7, 61, 3660.0, 42.4, True, "FAILED", 0.0, 3, None, None)
    assert describe_failure(late, 62) == "chunk 62 of 62 (1:01:00-1:01:42): failed"


# --- messages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "decoded"),
    [
        ('{"jobId": 5}', (5, None)),
        ('{"jobId": 5, "chunk": 0}', (5, 0)),
        ('{"jobId": 5, "chunk": 12}', (5, 12)),
        ('{"jobId": 5, "chunk": -1}', None),
        ('{"jobId": 5, "chunk": true}', None),
        ('{"jobId": 5, "chunk": "3"}', None),
        ('{"jobId": 0, "chunk": 3}', None),
        ("[5, 3]", None),
    ],
)
def test_message_bodies_name_a_job_or_one_of_its_chunks(
    body: str, decoded: tuple[int, int | None] | None
) -> None:
    assert decode_body(body) == decoded
    if decoded is not None:
        assert decode_body(encode_body(*decoded)) == decoded


# --- chunked jobs end to end -----------------------------------------------------------------

CHUNK_SECONDS = 8
SECONDS = 22  # three chunks: 8, 8 and 6 s


@pytest.fixture(params=[("postgres", "local"), ("sqs", "s3")], ids=["postgres-local", "sqs-s3"])
def backends(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    queue, storage = request.param
    queue_settings: dict[str, Any] = {"backend": "postgres", "poll_interval": 0.2}
    if queue == "sqs":
        queue_settings = sqs_queue_settings(request)
    storage_settings: dict[str, Any] = {"backend": "local"}
    if storage == "s3":
        storage_settings = request.getfixturevalue("s3_storage_settings")
    return {"queue": queue_settings, "storage": storage_settings}


@pytest.fixture
async def chunked_gallery(
    start_gallery: StartGallery, make_config: MakeConfig, backends: dict[str, dict[str, Any]]
) -> Gallery:
    return await start_gallery(
        make_config(
            transcode={"workers": 2, "chunk_seconds": CHUNK_SECONDS},
            queue={**backends["queue"], "visibility_timeout": 30},
            storage=backends["storage"],
        )
    )


@pytest.fixture
def long_clip(media: Media) -> Path:
    return media.clip("chunked", 320, 240, seconds=SECONDS)


async def test_a_long_upload_is_encoded_in_chunk_tasks_and_completes(
    chunked_gallery: Gallery, long_clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="videoforge.jobs")
    api = chunked_gallery
    video = await upload_clip(api, ALICE, long_clip)
    job = await create_job(api, ALICE, video["s3Key"], outputFormats=["low"])
    done = await wait_for_job(api, ALICE, job["id"])

    assert done["chunks"] == {"total": 3, "completed": 3}
    # The job's slot took part, and the other slot ran chunks from their messages.
    ran = [r.getMessage() for r in caplog.records if "COMPLETED by" in r.getMessage()]
    from_messages = [
        r.getMessage() for r in caplog.records if ": claimed (attempt" in r.getMessage()
    ]
    assert len(ran) == 3 and from_messages, caplog.text
    assets = await expect(await api.request("GET", f"/api/jobs/{job['id']}/assets", ALICE), 200)
    assert asset_kinds(assets["assets"]) == expected_outputs("low")
    # The chunk files were exchanged through storage, and deleted once the job completed.
    await chunk_files_deleted(api, job["id"], lambda: "the chunk files were not deleted")


@pytest.fixture
async def one_slot(start_gallery: StartGallery, make_config: MakeConfig) -> Gallery:
    """One slot on postgres and local storage: the job's own worker runs every chunk in order."""
    return await start_gallery(
        make_config(
            transcode={"workers": 1, "chunk_seconds": CHUNK_SECONDS},
            queue={"poll_interval": 0.2},
        )
    )


async def _chunked_job(api: Gallery, clip: Path, **body: Any) -> int:
    video = await upload_clip(api, ALICE, clip)
    job = await create_job(api, ALICE, video["s3Key"], outputFormats=["low"], **body)
    job_id: int = job["id"]
    return job_id


async def _planned(api: Gallery, job_id: int) -> dict[str, Any]:
    """The job once its chunks are planned."""
    async with asyncio.timeout(60):
        while "chunks" not in (job := await get_job(api, ALICE, job_id)):
            assert job["status"] not in {"COMPLETED", "FAILED", "CANCELLED"}, job
            await asyncio.sleep(0.05)
    return job


def _completed_chunks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage().split(":")[0] for r in caplog.records if "COMPLETED by" in r.getMessage()
    ]


async def test_a_chunk_that_fails_for_good_fails_the_job_and_a_restart_runs_only_what_is_missing(
    one_slot: Gallery, long_clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="videoforge.jobs")
    api = one_slot
    job_id = await _chunked_job(api, long_clip)
    await _planned(api, job_id)
    # The last chunk fails for good while the first is being encoded.
    failed = await api.app[keys.DB].execute(
        """
        UPDATE job_chunks SET status = 'FAILED', error_text = 'Transcoding failed: exit 1'
        WHERE job_id = $1 AND index = 2 AND status = 'PENDING'
        """,
        job_id,
    )
    assert failed == "UPDATE 1"
    job = await wait_for_job(api, ALICE, job_id, ("FAILED",))
    assert job["errorText"] == "chunk 3 of 3 (0:16-0:22): Transcoding failed: exit 1"
    assert job["chunks"] == {"total": 3, "completed": 2}
    assert _completed_chunks(caplog) == [f"job {job_id} chunk 0", f"job {job_id} chunk 1"]

    caplog.clear()
    restarted = await expect(
        await api.request("POST", "/api/jobs/admin/restart-failed", ADMIN), 200
    )
    assert restarted["jobIds"] == [job_id]
    done = await wait_for_job(api, ALICE, job_id)
    assert done["chunks"] == {"total": 3, "completed": 3}
    assert _completed_chunks(caplog) == [f"job {job_id} chunk 2"]


async def test_events_report_each_finished_chunk(one_slot: Gallery, long_clip: Path) -> None:
    api = one_slot
    job_id = await _chunked_job(api, long_clip)
    response = await api.request("GET", f"/api/jobs/{job_id}/events", ALICE)
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(90):
        async for raw in response.content:
            line = raw.decode().strip()
            if line.startswith("data:"):
                seen.append(json.loads(line.split(":", 1)[1]))
    completed = [event["chunks"]["completed"] for event in seen if "chunks" in event]
    assert seen[-1]["status"] == "COMPLETED" and seen[-1]["chunks"] == {"total": 3, "completed": 3}
    assert completed == sorted(completed) and {1, 2, 3} <= set(completed), seen
    progress = [event["progress"] for event in seen]
    assert progress == sorted(progress)


async def test_cancel_stops_every_chunk_and_its_ffmpeg(
    start_gallery: StartGallery, make_config: MakeConfig, media: Media
) -> None:
    api = await start_gallery(
        make_config(
            transcode={"workers": 2, "chunk_seconds": CHUNK_SECONDS},
            queue={"poll_interval": 0.2},
        )
    )
    clip = media.clip("chunked-720p", 1280, 720, seconds=SECONDS)
    job_id = await _chunked_job(api, clip)
    await _planned(api, job_id)
    # Both slots encode a chunk: the job's own, and one from a chunk message.
    await poll_until(lambda: len(ffmpeg_children(("ffmpeg",))) >= 2, 30, lambda: "no 2 ffmpeg")
    await expect(await api.request("POST", f"/api/jobs/{job_id}/cancel", ALICE), 200)
    job = await wait_for_job(api, ALICE, job_id, ("CANCELLED",))
    assert job["chunks"]["completed"] < 3
    await poll_until(lambda: not ffmpeg_children(), 5, lambda: f"left {ffmpeg_children()}")


async def _get_text(api: Gallery, url: str) -> str:
    async with api.http.get(url) as response:
        assert response.status == 200, url
        return await response.text()


async def test_a_chunked_video_plays_while_its_job_runs_and_its_playlists_end_as_vod(
    one_slot: Gallery, media: Media
) -> None:
    api = one_slot
    clip = media.clip("chunked-480p", 854, 480, seconds=SECONDS)
    video = await upload_clip(api, ALICE, clip, transcode=["low"])
    stream_path = f"/api/gallery/videos/{video['id']}/stream"
    first = await expect(await api.request("GET", stream_path, ALICE), 200)
    assert first["playable"] is False and "hlsUrl" not in first

    async def published() -> dict[str, Any] | None:
        stream: dict[str, Any] = await expect(await api.request("GET", stream_path, ALICE), 200)
        return stream if stream["playable"] else None

    stream = await poll_until_async(published, 60, lambda: "never playable")
    job = await get_job(api, ALICE, video["jobId"])
    assert job["status"] != "COMPLETED" and job["chunks"]["completed"] < 3, job
    master = await _get_text(api, stream["hlsUrl"])
    assert 'URI="audio/index.m3u8"' in master and "low/index.m3u8" in master
    base = stream["hlsUrl"].rsplit("/", 1)[0]
    growing = await _get_text(api, f"{base}/low/index.m3u8")
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in growing and "#EXT-X-ENDLIST" not in growing
    segments = [line for line in growing.splitlines() if line and not line.startswith("#")]
    assert len(segments) >= CHUNK_SECONDS // 4  # the first chunk's, at least
    async with api.http.get(segments[0]) as response:
        assert response.status == 200 and len(await response.read()) > 0

    await wait_for_job(api, ALICE, video["jobId"])
    ended = await _get_text(api, f"{base}/low/index.m3u8")
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in ended and ended.rstrip().endswith("#EXT-X-ENDLIST")
    names = [line.split("?")[0].rsplit("/", 1)[-1] for line in ended.splitlines() if "seg_" in line]
    assert names[: len(segments)] == [s.split("?")[0].rsplit("/", 1)[-1] for s in segments]
    done = await expect(await api.request("GET", stream_path, ALICE), 200)
    assert done["playable"] is True and done["qualities"] == ["low"]
