"""Use case 5 through the HTTP API: admins list, count, restart and clean up every user's jobs,
on real clips, real ffmpeg, real PostgreSQL and both storage backends."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.config import MakeConfig
from tests.gallery_support import (
    ADMIN,
    ALICE,
    BOB,
    Gallery,
    StartGallery,
    expect,
)
from tests.jobs_support import (
    create_job,
    upload_clip,
    wait_for_job,
)
from tests.media import Media
from videoforge import keys
from videoforge.queue.base import decode_body

GB = 1024**3
ADMIN_ROUTES = (
    ("GET", "/api/jobs/admin/all"),
    ("GET", "/api/jobs/admin/stats"),
    ("POST", "/api/jobs/admin/restart-failed"),
    ("DELETE", "/api/jobs/admin/cleanup-old"),
)
BAD_DAYS = ("0", "-1", "1.5", "abc", "", " 7", "1_000", "36501", "99999999999999999999")


@pytest.fixture
async def gallery(start_gallery: StartGallery, make_config: MakeConfig) -> Gallery:
    """The app with one worker, polling the PostgreSQL queue often."""
    return await start_gallery(make_config(queue={"poll_interval": 0.2}))


@pytest.fixture
async def idle_gallery(start_gallery: StartGallery, make_config: MakeConfig) -> Gallery:
    """The app without workers: jobs stay where they are put."""
    return await start_gallery(make_config(transcode={"workers": 0}))


# --- helpers ---------------------------------------------------------------------------------


async def admin_call(
    gallery: Gallery, method: str, path: str, status: int = 200, **kwargs: Any
) -> Any:
    return await expect(await gallery.request(method, path, ADMIN, **kwargs), status)


async def cleanup(gallery: Gallery, days: str | None = None, status: int = 200) -> Any:
    params = {} if days is None else {"days": days}
    return await admin_call(gallery, "DELETE", "/api/jobs/admin/cleanup-old", status, params=params)


async def all_jobs(gallery: Gallery, expected: int = 200, **query: Any) -> Any:
    params = {name: str(value) for name, value in query.items()}
    return await admin_call(gallery, "GET", "/api/jobs/admin/all", expected, params=params)


async def uploaded(gallery: Gallery, user: str, clip: Path) -> str:
    """The key of `clip`, uploaded by `user` but not confirmed (so no gallery video uses it)."""
    return await gallery.uploaded_key(user, await asyncio.to_thread(clip.read_bytes), clip.name)


async def objects(gallery: Gallery, prefix: str) -> dict[str, int]:
    """Every stored object under `prefix`, with its size."""
    return {info.key: info.size async for info in gallery.storage.list(prefix)}


def outputs(job_id: int) -> str:
    return f"videos/output/{job_id}/"


async def backdate(gallery: Gallery, column: str, job_ids: list[int], days: int) -> None:
    """Test setup only: pretend the jobs' `column` moment was `days` ago."""
    await gallery.app[keys.DB].execute(
        f"UPDATE jobs SET {column} = now() - make_interval(days => $2) WHERE id = ANY($1)",
        job_ids,
        days,
    )


def seconds_between(job: dict[str, Any]) -> float:
    started = datetime.fromisoformat(job["startedAt"])
    return (datetime.fromisoformat(job["completedAt"]) - started).total_seconds()


# --- use case 5 --------------------------------------------------------------------------------


async def test_use_case_5_admin_lists_counts_restarts_and_cleans_up_real_jobs(
    gallery: Gallery, media: Media
) -> None:
    alices = await create_job(
        gallery, ALICE, await uploaded(gallery, ALICE, media.small()), outputFormats=["low"]
    )
    bobs = await upload_clip(gallery, BOB, media.corrupt(), transcode=["low"])
    completed = await wait_for_job(gallery, ALICE, alices["id"])
    failed = await wait_for_job(gallery, BOB, bobs["jobId"], ("FAILED",))

    listed = await all_jobs(gallery)
    assert listed["jobs"] == [failed, completed]  # newest first, the job JSON of GET /api/jobs
    assert listed["pagination"] == {"total": 2, "page": 1, "limit": 10, "totalPages": 1}

    stats = await admin_call(gallery, "GET", "/api/jobs/admin/stats")
    stored = sum((await objects(gallery, "")).values())
    assert stats.pop("avgProcessingTime") == pytest.approx(seconds_between(completed), abs=0.1)
    assert stats == {
        "totalJobs": 2,
        "pending": 0,
        "processing": 0,
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
        "totalStorageUsed": round(stored / GB, 6),
        "totalStorageBytes": stored,
    }

    restarted = await admin_call(gallery, "POST", "/api/jobs/admin/restart-failed")
    assert restarted == {"message": "1 failed jobs restarted", "jobIds": [failed["id"]]}
    rerun = await wait_for_job(gallery, BOB, failed["id"], ("FAILED",))
    assert rerun["attempts"] == 1 and rerun["startedAt"] != failed["startedAt"]

    assert await cleanup(gallery) == {
        "message": "0 old jobs deleted",
        "freedSpace": 0,
        "freedBytes": 0,
    }
    await backdate(gallery, "completed_at", [completed["id"], failed["id"]], 31)
    freed = sum((await objects(gallery, outputs(completed["id"]))).values())
    assert freed > 0
    # Bob's failed job is still his video's current job: it stays.
    assert await cleanup(gallery, "30") == {
        "message": "1 old jobs deleted",
        "freedSpace": round(freed / GB, 6),
        "freedBytes": freed,
    }
    assert [job["id"] for job in (await all_jobs(gallery))["jobs"]] == [failed["id"]]


# --- all -----------------------------------------------------------------------------------------


async def test_all_jobs_filter_by_status_and_user_paginate_newest_first(
    idle_gallery: Gallery,
) -> None:
    gallery = idle_gallery
    alice_key, bob_key = await gallery.uploaded_key(ALICE), await gallery.uploaded_key(BOB)
    alices = [(await create_job(gallery, ALICE, alice_key))["id"] for _ in range(3)]
    bobs = [(await create_job(gallery, BOB, bob_key))["id"] for _ in range(2)]
    await expect(await gallery.request("POST", f"/api/jobs/{bobs[0]}/cancel", BOB), 200)

    def ids(body: dict[str, Any]) -> list[int]:
        return [job["id"] for job in body["jobs"]]

    everyone = await all_jobs(gallery)
    assert ids(everyone) == sorted(alices + bobs, reverse=True)
    assert ids(await all_jobs(gallery, userId=ALICE)) == alices[::-1]
    assert ids(await all_jobs(gallery, status="CANCELLED")) == [bobs[0]]
    assert ids(await all_jobs(gallery, userId=BOB, status="PENDING")) == [bobs[1]]
    assert ids(await all_jobs(gallery, userId="nobody")) == []

    page = await all_jobs(gallery, page=2, limit=2)
    assert ids(page) == ids(everyone)[2:4]
    assert page["pagination"] == {"total": 5, "page": 2, "limit": 2, "totalPages": 3}
    assert (await all_jobs(gallery, limit=1000))["pagination"]["limit"] == 100


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "DONE"}, "status"),
        ({"status": "pending"}, "status"),
        ({"userId": "../bob"}, "userId"),
        ({"userId": ""}, "userId"),
        ({"userId": "x" * 129}, "userId"),
        ({"page": "0"}, "page"),
        ({"limit": "abc"}, "limit"),
    ],
)
async def test_all_jobs_with_bad_filter_is_400_naming_the_field(
    idle_gallery: Gallery, query: dict[str, str], field: str
) -> None:
    refused = await all_jobs(idle_gallery, 400, **query)
    assert field in refused["details"]


# --- restart-failed ----------------------------------------------------------------------------


async def test_restart_failed_reruns_a_job_whose_input_was_fixed_to_completed(
    gallery: Gallery, media: Media
) -> None:
    # An unconfirmed upload: a confirmed original is sealed and never changes under its video.
    key = await uploaded(gallery, ALICE, media.corrupt())
    failed = await wait_for_job(
        gallery,
        ALICE,
        (await create_job(gallery, ALICE, key, outputFormats=["low"]))["id"],
        ("FAILED",),
    )
    await gallery.storage.put_file(key, media.small(), "video/mp4")  # fixed in place

    restarted = await admin_call(gallery, "POST", "/api/jobs/admin/restart-failed")
    assert restarted["jobIds"] == [failed["id"]]

    done = await wait_for_job(gallery, ALICE, failed["id"])
    assert (done["attempts"], done["errorText"], done["progress"]) == (1, None, 100)
    assert done["resolution"] == "320x240"


async def test_concurrent_restarts_split_the_failed_jobs_and_enqueue_each_once(
    gallery: Gallery, start_gallery: StartGallery, make_config: MakeConfig, media: Media
) -> None:
    corrupt = await uploaded(gallery, ALICE, media.corrupt())
    job_ids = [(await create_job(gallery, ALICE, corrupt))["id"] for _ in range(6)]
    for job_id in job_ids:
        await wait_for_job(gallery, ALICE, job_id, ("FAILED",))
    await gallery.client.close()  # the worker stops: what the restarts enqueue stays queued
    api = await start_gallery(make_config(transcode={"workers": 0}))

    first, second = await asyncio.gather(
        *(admin_call(api, "POST", "/api/jobs/admin/restart-failed") for _ in range(2))
    )

    assert not set(first["jobIds"]) & set(second["jobIds"])
    assert sorted(first["jobIds"] + second["jobIds"]) == job_ids
    rows = await api.app[keys.DB].fetch(
        "SELECT body FROM queue_messages WHERE dead_lettered_at IS NULL"
    )
    assert Counter(decode_body(row["body"]) for row in rows) == {(j, None): 1 for j in job_ids}
    pending = await all_jobs(api, status="PENDING")
    assert pending["pagination"]["total"] == len(job_ids)
    assert {(job["attempts"], job["errorText"]) for job in pending["jobs"]} == {(0, None)}


# --- cleanup-old -------------------------------------------------------------------------------


async def test_cleanup_old_deletes_only_old_ended_jobs_with_every_output_on_each_backend(
    start_gallery: StartGallery,
    make_config: MakeConfig,
    storage_settings: dict[str, Any],
    media: Media,
) -> None:
    worker = await start_gallery(make_config(storage=storage_settings))
    old_done = await create_job(
        worker, ALICE, await uploaded(worker, ALICE, media.small()), outputFormats=["low"]
    )
    old_failed = await create_job(worker, BOB, await uploaded(worker, BOB, media.corrupt()))
    published = await upload_clip(worker, ALICE, media.small(), transcode=["low"])
    for user, job_id, status in (
        (ALICE, old_done["id"], "COMPLETED"),
        (BOB, old_failed["id"], "FAILED"),
        (ALICE, published["jobId"], "COMPLETED"),
    ):
        await wait_for_job(worker, user, job_id, (status,))
    await worker.client.close()
    gallery = await start_gallery(make_config(storage=storage_settings, transcode={"workers": 0}))
    pending = await create_job(gallery, BOB, await gallery.uploaded_key(BOB))
    recent = await create_job(gallery, BOB, await gallery.uploaded_key(BOB))
    await expect(await gallery.request("POST", f"/api/jobs/{recent['id']}/cancel", BOB), 200)
    # Partial outputs, as a failed, cancelled or retried job may leave them.
    for job_id in (old_failed["id"], recent["id"], pending["id"]):
        await gallery.storage.put_bytes(
            outputs(job_id) + "partial/seg0.ts", b"x" * 1000, "video/mp2t"
        )

    old = [old_done["id"], old_failed["id"]]
    kept = [published["jobId"], pending["id"], recent["id"]]
    await backdate(gallery, "completed_at", [*old, published["jobId"]], 40)
    await backdate(gallery, "completed_at", [recent["id"]], 10)
    await backdate(gallery, "created_at", [pending["id"]], 400)
    before = {job_id: await objects(gallery, outputs(job_id)) for job_id in old + kept}
    assert all(before.values())

    for days in BAD_DAYS:
        refused = await cleanup(gallery, days, 400)
        assert "days" in refused["details"], days
    assert (await all_jobs(gallery))["pagination"]["total"] == 5

    freed = sum(sum(before[job_id].values()) for job_id in old)
    assert await cleanup(gallery, "30") == {
        "message": "2 old jobs deleted",
        "freedSpace": round(freed / GB, 6),
        "freedBytes": freed,
    }

    left = await all_jobs(gallery)
    assert sorted(job["id"] for job in left["jobs"]) == sorted(kept)
    assert {job["id"]: job["status"] for job in left["jobs"]}[pending["id"]] == "PENDING"
    for job_id in old:
        assert await objects(gallery, outputs(job_id)) == {}
    for job_id in kept:
        assert await objects(gallery, outputs(job_id)) == before[job_id]
    orphans = await gallery.app[keys.DB].fetchval(
        "SELECT count(*) FROM media_assets WHERE job_id = ANY($1)", old
    )
    assert orphans == 0
    stream = await expect(await gallery.stream(published["id"], ALICE), 200)
    assert (await gallery.get_object(stream["streamUrl"]))[0] == 200
    assert (await cleanup(gallery, "30"))["message"] == "0 old jobs deleted"


# --- access and audit --------------------------------------------------------------------------


async def test_every_admin_route_is_403_for_a_user_and_401_without_a_token(
    idle_gallery: Gallery,
) -> None:
    for method, path in ADMIN_ROUTES:
        for user, status in ((ALICE, 403), (None, 401)):
            refused = await expect(await idle_gallery.request(method, path, user), status)
            assert set(refused) == {"error"}, (method, path, user)


async def test_admin_actions_log_a_line_naming_the_admin(
    idle_gallery: Gallery, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="videoforge.admin"):
        await admin_call(idle_gallery, "POST", "/api/jobs/admin/restart-failed")
        await cleanup(idle_gallery, "7")
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("videoforge.admin")]
    assert f"admin {ADMIN}: restart-failed jobs=0" in lines
    assert f"admin {ADMIN}: cleanup-old days=7 jobs=0 freed_bytes=0" in lines
