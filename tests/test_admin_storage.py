"""The storage sweep and per-user usage (admin routes), on both storage backends."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.errors_support import assert_error
from tests.fixtures.config import MakeConfig
from tests.gallery_support import (
    ADMIN,
    ALICE,
    BOB,
    Gallery,
    StartGallery,
    expect,
    signed,
)
from tests.jobs_support import create_job
from videoforge import keys
from videoforge.admin.storage import (
    DELETED_JOB,
    DELETED_VIDEO,
    FINISHED_JOB_CHUNK,
    UNCONFIRMED_UPLOAD,
    AbandonedUpload,
    abandoned_upload,
    is_original,
    original_orphan_reason,
    output_job_id,
    sweep,
    upload_grace,
)
from videoforge.db import assets as assets_db
from videoforge.db import videos as videos_db
from videoforge.db.assets import NewAsset
from videoforge.model import RUNNING, JobStatus
from videoforge.storage.layout import OutputLayout
from videoforge.storage.multipart import PendingUpload

SWEEP = "/api/admin/storage/sweep"
MULTIPART = "/api/uploads/s3/multipart"
NO_UPLOADS = {"uploadCount": 0, "uploadBytes": 0, "uploads": []}
USAGE = "/api/admin/storage/usage"
ROUTES = [("POST", SWEEP), ("GET", USAGE)]


@pytest.fixture
async def gallery(
    start_gallery: StartGallery, make_config: MakeConfig, storage_settings: dict[str, Any]
) -> Gallery:
    """The app on each storage backend, with no workers: jobs stay PENDING, no ffmpeg runs."""
    return await start_gallery(make_config(storage=storage_settings, transcode={"workers": 0}))


def _pool(gallery: Gallery) -> asyncpg.Pool:
    return gallery.app[keys.DB]


async def _confirmed(gallery: Gallery, user: str, data: bytes, filename: str) -> dict[str, Any]:
    """generate-url, PUT and confirm: the video record."""
    key = await gallery.uploaded_key(user, data, filename=filename)
    body = {"s3Key": key, "title": filename}
    record: dict[str, Any] = await expect(await gallery.confirm(user, body), 201)
    return record


async def _put(gallery: Gallery, key: str, size: int) -> str:
    await gallery.storage.put_bytes(key, b"x" * size, "application/octet-stream")
    return key


async def _stored_keys(gallery: Gallery) -> set[str]:
    return {info.key async for info in gallery.storage.list()}


async def _upload_rows(gallery: Gallery) -> set[str]:
    rows = await _pool(gallery).fetch("SELECT s3_key FROM uploads")
    return {row["s3_key"] for row in rows}


async def _sweep(gallery: Gallery, dry_run: str | None = None, status: int = 200) -> Any:
    params = {} if dry_run is None else {"dryRun": dry_run}
    return await expect(await gallery.request("POST", SWEEP, ADMIN, params=params), status)


def _reported(body: dict[str, Any]) -> dict[str, tuple[int, str]]:
    return {item["key"]: (item["size"], item["reason"]) for item in body["objects"]}


@dataclass
class Scene:
    """What the sweep must remove (key -> size, reason) and what it must keep."""

    orphans: dict[str, tuple[int, str]]
    kept: set[str]
    stale_upload: str
    fresh_upload: str


async def _build_scene(gallery: Gallery) -> Scene:
    """One object of each kind the sweep tells apart."""
    confirmed = await _confirmed(gallery, ALICE, b"c" * 100, "kept.mp4")
    stale = await gallery.uploaded_key(ALICE, b"s" * 1000, filename="stale.mp4")
    await _pool(gallery).execute(
        "UPDATE uploads SET created_at = now() - interval '25 hours' WHERE s3_key = $1", stale
    )
    fresh = await gallery.uploaded_key(BOB, b"f" * 150, filename="fresh.mp4")
    deleted = await _confirmed(gallery, ALICE, b"d" * 2000, "deleted.mp4")
    await expect(await gallery.delete(deleted["id"], ALICE), 200)
    in_use = await _confirmed(gallery, BOB, b"u" * 300, "in-use.mp4")
    job = await create_job(gallery, BOB, in_use["s3Key"], outputFormats=["low"])
    await expect(await gallery.delete(in_use["id"], BOB), 200)
    live_output = await _put(gallery, f"videos/output/{job['id']}/thumbnail.jpg", 50)
    dead = job["id"] + 1000  # no such job
    dead_thumbnail = await _put(gallery, f"videos/output/{dead}/thumbnail.jpg", 64)
    dead_playlist = await _put(gallery, f"videos/output/{dead}/hls/master.m3u8", 32)
    foreign = {
        await _put(gallery, "backups/db.dump", 10),
        await _put(gallery, "videos/output/latest/thumbnail.jpg", 11),
        await _put(gallery, "videos/output/007/thumbnail.jpg", 12),
        await _put(gallery, "gallery/README.txt", 13),
    }
    return Scene(
        orphans={
            stale: (1000, UNCONFIRMED_UPLOAD),
            deleted["s3Key"]: (2000, DELETED_VIDEO),
            dead_thumbnail: (64, "deleted job"),
            dead_playlist: (32, "deleted job"),
        },
        kept={confirmed["s3Key"], fresh, in_use["s3Key"], live_output, *foreign},
        stale_upload=stale,
        fresh_upload=fresh,
    )


# --- the sweep ------------------------------------------------------------------------------


async def test_sweep_deletes_exactly_the_orphans_and_a_second_sweep_finds_none(
    gallery: Gallery,
) -> None:
    scene = await _build_scene(gallery)
    before = await _stored_keys(gallery)
    assert scene.kept | set(scene.orphans) == before

    body = await _sweep(gallery, "false")
    assert {name: value for name, value in body.items() if name != "objects"} == {
        "dryRun": False,
        "message": "4 orphaned objects deleted",
        "count": 4,
        "bytes": 3096,
        "freedSpace": round(3096 / 1024**3, 6),
        **NO_UPLOADS,
    }
    assert _reported(body) == scene.orphans
    assert await _stored_keys(gallery) == scene.kept
    # Abandoned upload rows go with a real sweep; pending ones stay.
    assert await _upload_rows(gallery) == {scene.fresh_upload}

    assert await _sweep(gallery, "false") == {
        "dryRun": False,
        "message": "0 orphaned objects deleted",
        "count": 0,
        "bytes": 0,
        "freedSpace": 0,
        "objects": [],
        **NO_UPLOADS,
    }
    assert await _stored_keys(gallery) == scene.kept


async def test_dry_run_sweep_reports_the_same_orphans_and_deletes_nothing(
    gallery: Gallery,
) -> None:
    scene = await _build_scene(gallery)
    before = await _stored_keys(gallery)

    body = await _sweep(gallery)  # a dry run unless told otherwise
    assert {name: value for name, value in body.items() if name != "objects"} == {
        "dryRun": True,
        "message": "4 orphaned objects found",
        "count": 4,
        "bytes": 3096,
        "freedSpace": 0,
        **NO_UPLOADS,
    }
    assert _reported(body) == scene.orphans
    assert await _sweep(gallery, "true") == body
    assert await _stored_keys(gallery) == before
    assert await _upload_rows(gallery) == {scene.stale_upload, scene.fresh_upload}


async def test_sweep_keeps_outputs_a_video_still_shows_after_its_job_is_deleted(
    gallery: Gallery,
) -> None:
    video = await _confirmed(gallery, ALICE, b"v" * 100, "clip.mp4")
    job = await create_job(gallery, ALICE, video["s3Key"], outputFormats=["low"])
    prefix = f"videos/output/{job['id']}/"
    thumbnail = await _put(gallery, prefix + "thumbnail.jpg", 20)
    preview = await _put(gallery, prefix + "preview.gif", 30)
    rendition = await _put(gallery, prefix + "low.mp4", 40)
    changes = {"thumbnail_key": thumbnail, "preview_key": preview}
    await videos_db.update_video(_pool(gallery), video["id"], changes)
    await _pool(gallery).execute("DELETE FROM jobs WHERE id = $1", job["id"])

    body = await _sweep(gallery, "false")

    assert _reported(body) == {rendition: (40, "deleted job")}
    assert await _stored_keys(gallery) == {video["s3Key"], thumbnail, preview}


@pytest.mark.parametrize("value", ["yes", "1", "False", ""])
async def test_sweep_with_bad_dry_run_is_400_with_details_and_deletes_nothing(
    gallery: Gallery, value: str
) -> None:
    orphan = await _put(gallery, "videos/output/999/thumbnail.jpg", 5)
    body = await _sweep(gallery, value, status=400)
    assert body["details"] == {"dryRun": ["Must be true or false."]}
    assert await _stored_keys(gallery) == {orphan}


async def test_upload_url_is_recorded_until_its_video_is_confirmed(gallery: Gallery) -> None:
    key = await gallery.uploaded_key(ALICE, b"a" * 10, filename="clip.mp4")
    row = await _pool(gallery).fetchrow("SELECT user_id FROM uploads WHERE s3_key = $1", key)
    assert row is not None and row["user_id"] == ALICE
    await expect(await gallery.confirm(ALICE, {"s3Key": key, "title": "clip"}), 201)
    assert await _upload_rows(gallery) == set()


async def test_sweep_is_logged_naming_the_admin(
    gallery: Gallery, caplog: pytest.LogCaptureFixture
) -> None:
    await _put(gallery, "videos/output/999/thumbnail.jpg", 7)
    with caplog.at_level(logging.INFO, logger="videoforge.admin"):
        await _sweep(gallery, "false")
    messages = [r.getMessage() for r in caplog.records if r.name == "videoforge.admin"]
    assert messages == [f"admin {ADMIN}: storage sweep dry_run=False count=1 bytes=7"]


# --- chunk files ------------------------------------------------------------------------------

ENDED_FOR_GOOD = (JobStatus.COMPLETED, JobStatus.CANCELLED)
# A FAILED job may be restarted, and then reuses the chunks it finished.
MAY_RUN_AGAIN = (JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.FAILED)


@dataclass
class ChunkedJob:
    """A chunked job's chunk files (key -> size) and its other outputs (key -> size)."""

    job_id: int
    chunks: dict[str, int]
    outputs: dict[str, int]


async def _chunked_job(gallery: Gallery, source: str, status: JobStatus) -> ChunkedJob:
    """A job in `status` with two chunks' videos and two ordinary outputs stored."""
    job = await create_job(gallery, ALICE, source, outputFormats=["low"])
    leased = status in RUNNING  # a worker holds a running job under a live lease
    await _pool(gallery).execute(
        """
        UPDATE jobs SET status = $2,
            lease_owner = CASE WHEN $3 THEN 'worker-1' END,
            lease_expires_at = CASE WHEN $3 THEN now() + interval '1 hour' END
        WHERE id = $1
        """,
        job["id"],
        status.value,
        leased,
    )
    layout = OutputLayout(job["id"])
    chunks = {layout.chunk_video(0, "low"): 10, layout.chunk_video(1, "low"): 20}
    outputs = {layout.rendition("low"): 30, layout.thumbnail: 5}
    for key, size in (chunks | outputs).items():
        await _put(gallery, key, size)
    return ChunkedJob(job["id"], chunks, outputs)


async def _chunked_jobs(gallery: Gallery, *statuses: JobStatus) -> dict[JobStatus, ChunkedJob]:
    """One chunked job in each of `statuses`, all on one confirmed video."""
    source = (await _confirmed(gallery, ALICE, b"v" * 100, "long.mp4"))["s3Key"]
    return {status: await _chunked_job(gallery, source, status) for status in statuses}


def _finished_chunks(jobs: dict[JobStatus, ChunkedJob]) -> dict[str, tuple[int, str]]:
    """What a sweep reports of these jobs: the chunk files of those that ended for good."""
    return {
        key: (size, FINISHED_JOB_CHUNK)
        for status in ENDED_FOR_GOOD
        for key, size in jobs[status].chunks.items()
    }


async def test_sweep_deletes_chunk_files_of_completed_and_cancelled_jobs_only(
    gallery: Gallery,
) -> None:
    jobs = await _chunked_jobs(gallery, *ENDED_FOR_GOOD, *MAY_RUN_AGAIN)
    before = await _stored_keys(gallery)

    body = await _sweep(gallery, "false")

    finished = _finished_chunks(jobs)
    assert (body["message"], body["count"], body["bytes"]) == ("4 orphaned objects deleted", 4, 60)
    assert _reported(body) == finished
    assert await _stored_keys(gallery) == before - set(finished)
    assert (await _sweep(gallery, "false"))["count"] == 0


@pytest.mark.parametrize("status", MAY_RUN_AGAIN)
async def test_sweep_keeps_chunk_files_of_a_job_that_may_run_again(
    gallery: Gallery, status: JobStatus
) -> None:
    jobs = await _chunked_jobs(gallery, status)
    before = await _stored_keys(gallery)

    body = await _sweep(gallery, "false")

    assert (body["count"], body["objects"]) == (0, [])
    stored = await _stored_keys(gallery)
    assert stored == before
    assert set(jobs[status].chunks) <= stored


@pytest.mark.parametrize("status", ENDED_FOR_GOOD)
async def test_sweep_keeps_the_other_outputs_of_a_job_whose_chunk_files_it_deletes(
    gallery: Gallery, status: JobStatus
) -> None:
    job = (await _chunked_jobs(gallery, status))[status]

    await _sweep(gallery, "false")

    stored = await _stored_keys(gallery)
    assert set(job.outputs) <= stored
    assert not set(job.chunks) & stored


async def test_dry_run_sweep_reports_chunk_files_of_finished_jobs_and_deletes_nothing(
    gallery: Gallery,
) -> None:
    jobs = await _chunked_jobs(gallery, *ENDED_FOR_GOOD, *MAY_RUN_AGAIN)
    before = await _stored_keys(gallery)

    body = await _sweep(gallery)

    assert (body["message"], body["count"], body["bytes"]) == ("4 orphaned objects found", 4, 60)
    assert _reported(body) == _finished_chunks(jobs)
    assert await _stored_keys(gallery) == before


async def test_sweep_deletes_chunk_files_of_a_deleted_job_as_outputs_of_a_deleted_job(
    gallery: Gallery,
) -> None:
    job = (await _chunked_jobs(gallery, JobStatus.FAILED))[JobStatus.FAILED]
    await _pool(gallery).execute("DELETE FROM jobs WHERE id = $1", job.job_id)
    before = await _stored_keys(gallery)

    body = await _sweep(gallery, "false")

    files = job.chunks | job.outputs
    assert _reported(body) == {key: (size, DELETED_JOB) for key, size in files.items()}
    assert await _stored_keys(gallery) == before - set(files)


# --- abandoned multipart uploads ------------------------------------------------------------


async def _start_multipart(gallery: Gallery, user: str, part: bytes) -> dict[str, str]:
    """A multipart upload started through the API with one part stored: `{key, uploadId}`."""
    body = {"filename": "big.mp4", "type": "video/mp4", "metadata": {}}
    upload: dict[str, str] = await expect(
        await gallery.request("POST", MULTIPART, user, json=body), 200
    )
    await _put_part(gallery, upload["key"], upload["uploadId"], part)
    return upload


async def _put_part(gallery: Gallery, key: str, upload_id: str, data: bytes) -> None:
    url = await gallery.storage.presign_part(key, upload_id, 1, 300)
    async with gallery.http.put(signed(url), data=io.BytesIO(data)) as response:
        assert response.status == 200, await response.text()


async def _age(gallery: Gallery, upload: dict[str, str]) -> datetime:
    """Make the upload's row 25 hours old; its new `created_at`."""
    started: datetime = await _pool(gallery).fetchval(
        """
        UPDATE uploads SET created_at = now() - interval '25 hours'
        WHERE multipart_upload_id = $1 RETURNING created_at
        """,
        upload["uploadId"],
    )
    return started


async def _pending(gallery: Gallery) -> set[str]:
    return {upload.upload_id async for upload in gallery.storage.pending_uploads()}


async def _multipart_rows(gallery: Gallery) -> set[str]:
    rows = await _pool(gallery).fetch(
        "SELECT multipart_upload_id FROM uploads WHERE multipart_upload_id IS NOT NULL"
    )
    return {row["multipart_upload_id"] for row in rows}


async def test_sweep_aborts_multipart_uploads_started_over_a_day_ago_and_spares_young_ones(
    gallery: Gallery,
) -> None:
    old = await _start_multipart(gallery, ALICE, b"o" * 700)
    started = await _age(gallery, old)
    young = await _start_multipart(gallery, BOB, b"y" * 300)
    ids = {old["uploadId"], young["uploadId"]}
    abandoned = {
        "key": old["key"],
        "uploadId": old["uploadId"],
        "bytes": 700,
        "started": started.isoformat(),
    }

    found = await _sweep(gallery)
    assert found == {
        "dryRun": True,
        "message": "0 orphaned objects found; 1 abandoned multipart uploads found",
        "count": 0,
        "bytes": 0,
        "freedSpace": 0,
        "objects": [],
        "uploadCount": 1,
        "uploadBytes": 700,
        "uploads": [abandoned],
    }
    assert await _pending(gallery) == ids
    assert await _multipart_rows(gallery) == ids

    aborted = await _sweep(gallery, "false")
    assert aborted == {
        **found,
        "dryRun": False,
        "message": "0 orphaned objects deleted; 1 abandoned multipart uploads aborted",
    }
    assert await _pending(gallery) == {young["uploadId"]}
    assert await _multipart_rows(gallery) == {young["uploadId"]}
    assert (await _sweep(gallery, "false"))["uploads"] == []


async def test_sweep_dates_an_upload_without_a_row_by_the_store_and_spares_foreign_keys(
    gallery: Gallery,
) -> None:
    storage = gallery.storage
    ours = await storage.create_multipart("gallery/alice/1700000000000-lost.mp4", "video/mp4")
    await _put_part(gallery, "gallery/alice/1700000000000-lost.mp4", ours, b"l" * 50)
    foreign = await storage.create_multipart("backups/db.dump", "application/octet-stream")

    # Started just now by the store's clock: young.
    assert (await _sweep(gallery, "false"))["uploads"] == []
    assert await _pending(gallery) == {ours, foreign}

    # No grace: anything started before this sweep is abandoned, but only keys of ours.
    report = await sweep(_pool(gallery), storage, dry_run=False, grace=timedelta(0))
    assert [(u.key, u.upload_id, u.size) for u in report.uploads] == [
        ("gallery/alice/1700000000000-lost.mp4", ours, 50)
    ]
    assert await _pending(gallery) == {foreign}


async def test_sweep_forgets_an_aged_upload_that_storage_aborted_already(
    gallery: Gallery,
) -> None:
    upload = await _start_multipart(gallery, ALICE, b"a" * 10)
    await _age(gallery, upload)
    await gallery.storage.abort_multipart(upload["key"], upload["uploadId"])

    body = await _sweep(gallery, "false")

    assert body["message"] == "0 orphaned objects deleted"
    assert {name: body[name] for name in NO_UPLOADS} == NO_UPLOADS
    assert await _multipart_rows(gallery) == set()


async def test_sweep_skips_an_upload_aborted_between_listing_and_abort(
    gallery: Gallery, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = await _start_multipart(gallery, ALICE, b"a" * 10)
    await _age(gallery, upload)
    listed = [pending async for pending in gallery.storage.pending_uploads()]
    await gallery.storage.abort_multipart(upload["key"], upload["uploadId"])

    async def stale_listing() -> AsyncIterator[PendingUpload]:
        for pending in listed:
            yield pending

    monkeypatch.setattr(gallery.storage, "pending_uploads", stale_listing)
    # Whether it is reported depends on the store: AWS and local storage refuse the second
    # abort (so it is left out), SeaweedFS answers it with success.
    body = await _sweep(gallery, "false")

    assert body["message"].startswith("0 orphaned objects deleted")
    assert await _multipart_rows(gallery) == set()
    monkeypatch.undo()
    assert await _pending(gallery) == set()


async def test_sweep_that_aborts_uploads_logs_them(
    gallery: Gallery, caplog: pytest.LogCaptureFixture
) -> None:
    await _age(gallery, await _start_multipart(gallery, ALICE, b"a" * 9))
    with caplog.at_level(logging.INFO, logger="videoforge.admin"):
        await _sweep(gallery, "false")
    messages = [r.getMessage() for r in caplog.records if r.name == "videoforge.admin"]
    expected = "storage sweep dry_run=False count=0 bytes=0 uploads=1 upload_bytes=9"
    assert messages == [f"admin {ADMIN}: {expected}"]


# --- access ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_admin_storage_route_without_token_is_401(
    gallery: Gallery, method: str, path: str
) -> None:
    await _put(gallery, "videos/output/999/thumbnail.jpg", 5)
    body = await expect(await gallery.request(method, path, params={"dryRun": "false"}), 401)
    assert body == {"error": "Authentication required"}
    assert await _stored_keys(gallery) == {"videos/output/999/thumbnail.jpg"}


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_admin_storage_route_for_non_admin_is_403(
    gallery: Gallery, method: str, path: str
) -> None:
    await _put(gallery, "videos/output/999/thumbnail.jpg", 5)
    response = await gallery.request(method, path, ALICE, params={"dryRun": "false"})
    assert await expect(response, 403) == {"error": "Admin access required"}
    assert await _stored_keys(gallery) == {"videos/output/999/thumbnail.jpg"}


# --- usage ----------------------------------------------------------------------------------


async def _with_outputs(gallery: Gallery, user: str, key: str, sizes: list[int]) -> None:
    """A job of `user`'s on `key` whose recorded outputs have these sizes."""
    job = await create_job(gallery, user, key, outputFormats=["low"])
    outputs = [
        NewAsset("video", "mp4", "low", f"videos/output/{job['id']}/{n}.mp4", size)
        for n, size in enumerate(sizes)
    ]
    await assets_db.replace_assets(_pool(gallery), job["id"], outputs)


async def test_usage_reports_bytes_and_video_counts_per_user_largest_first(
    gallery: Gallery,
) -> None:
    first = await _confirmed(gallery, ALICE, b"a" * 1000, "one.mp4")
    await _confirmed(gallery, ALICE, b"a" * 2000, "two.mp4")
    gone = await _confirmed(gallery, ALICE, b"a" * 4000, "gone.mp4")
    await expect(await gallery.delete(gone["id"], ALICE), 200)
    own = await _confirmed(gallery, BOB, b"b" * 500, "bob.mp4")
    await _with_outputs(gallery, BOB, own["s3Key"], [40, 7000])
    await _with_outputs(gallery, ADMIN, first["s3Key"], [60])  # admins may use any object

    body = await expect(await gallery.request("GET", USAGE, ADMIN), 200)

    assert body == {
        "users": [
            _usage(BOB, 1, 500, 7040),
            _usage(ALICE, 2, 3000, 0),
            _usage(ADMIN, 0, 0, 60),
        ],
        "totals": {
            "users": 3,
            "videos": 3,
            "originalBytes": 3500,
            "outputBytes": 7100,
            "totalBytes": 10600,
        },
        "pagination": {"total": 3, "page": 1, "limit": 10, "totalPages": 1},
    }
    page = await expect(await gallery.request("GET", USAGE, ADMIN, params="page=2&limit=2"), 200)
    assert page["users"] == [_usage(ADMIN, 0, 0, 60)]
    assert page["pagination"] == {"total": 3, "page": 2, "limit": 2, "totalPages": 2}


async def test_usage_limit_is_capped_at_100_and_bad_page_is_400(gallery: Gallery) -> None:
    body = await expect(await gallery.request("GET", USAGE, ADMIN, params="limit=1000"), 200)
    assert body["pagination"] == {"total": 0, "page": 1, "limit": 100, "totalPages": 0}
    assert body["users"] == []
    refused = await gallery.request("GET", USAGE, ADMIN, params="page=0")
    problem = "Must be greater than or equal to 1."
    await assert_error(refused, 400, f"page: {problem}", {"page": [problem]})


def _usage(user: str, videos: int, original: int, output: int) -> dict[str, Any]:
    return {
        "userId": user,
        "videos": videos,
        "originalBytes": original,
        "outputBytes": output,
        "totalBytes": original + output,
    }


# --- key families and verdicts (no services) ------------------------------------------------


@pytest.mark.parametrize(
    ("key", "job_id"),
    [
        ("videos/output/12/thumbnail.jpg", 12),
        ("videos/output/3/hls/720p/segment_001.ts", 3),
        ("videos/output/9223372036854775807/low.mp4", 2**63 - 1),
        ("videos/output/9223372036854775808/low.mp4", None),
        ("videos/output/012/low.mp4", None),
        ("videos/output/0/low.mp4", None),
        ("videos/output/-1/low.mp4", None),
        ("videos/output/latest/low.mp4", None),
        ("videos/output/12", None),
        ("videos/output/12/", None),
        ("videos/outputs/12/low.mp4", None),
        ("videos/output/12//low.mp4", None),
        ("videos/output/12/hls/../low.mp4", None),
    ],
)
def test_output_job_id_reads_only_keys_output_prefix_writes(key: str, job_id: int | None) -> None:
    assert output_job_id(key) == job_id


@pytest.mark.parametrize(
    ("key", "ours"),
    [
        ("gallery/alice/1700000000000-clip.mp4", True),
        ("gallery/README.txt", False),
        ("gallery//clip.mp4", False),
        ("gallery/alice/", False),
        ("galleryx/alice/clip.mp4", False),
        ("gallery/alice/../bob/clip.mp4", False),
        ("gallery/alice/clip\n.mp4", False),
    ],
)
def test_is_original_matches_only_upload_keys(key: str, ours: bool) -> None:
    assert is_original(key) is ours


NOW = datetime(2025, 1, 2, tzinfo=UTC)
CUTOFF = NOW - timedelta(hours=24)


@pytest.mark.parametrize(
    ("referenced", "uploaded_at", "reason"),
    [
        (True, None, None),
        (True, CUTOFF - timedelta(hours=1), None),
        (False, CUTOFF + timedelta(hours=1), None),
        (False, CUTOFF, None),
        (False, CUTOFF - timedelta(seconds=1), UNCONFIRMED_UPLOAD),
        (False, None, DELETED_VIDEO),
    ],
)
def test_original_orphan_reason_spares_referenced_and_pending_uploads(
    referenced: bool, uploaded_at: datetime | None, reason: str | None
) -> None:
    assert original_orphan_reason(referenced, uploaded_at, CUTOFF) == reason


def _pending_upload(started: datetime | None) -> PendingUpload:
    return PendingUpload("gallery/alice/1-clip.mp4", "id", started, 42)


@pytest.mark.parametrize(
    ("recorded_at", "store_started", "abandoned_since"),
    [
        (CUTOFF - timedelta(seconds=1), None, CUTOFF - timedelta(seconds=1)),
        (CUTOFF - timedelta(hours=1), CUTOFF + timedelta(hours=1), CUTOFF - timedelta(hours=1)),
        (CUTOFF + timedelta(hours=1), CUTOFF - timedelta(hours=1), None),
        (CUTOFF, None, None),
        (None, CUTOFF - timedelta(seconds=1), CUTOFF - timedelta(seconds=1)),
        (None, CUTOFF, None),
        (None, None, None),
    ],
)
def test_abandoned_upload_is_dated_by_its_row_before_the_store(
    recorded_at: datetime | None, store_started: datetime | None, abandoned_since: datetime | None
) -> None:
    verdict = abandoned_upload(_pending_upload(store_started), recorded_at, CUTOFF)
    expected = None
    if abandoned_since is not None:
        expected = AbandonedUpload("gallery/alice/1-clip.mp4", "id", 42, abandoned_since)
    assert verdict == expected


async def test_sweep_reference_checks_can_use_indexes(db_pool: asyncpg.Pool) -> None:
    checks = {
        "SELECT s3_key FROM uploads WHERE s3_key = ANY($1::text[])": "uploads_pkey",
        "SELECT s3_key FROM uploads WHERE multipart_upload_id = ANY($1::text[])": (
            "uploads_multipart_upload_id_key"
        ),
        "SELECT id FROM jobs WHERE input_source = ANY($1::text[])": "jobs_input_source_idx",
        "SELECT id FROM gallery_videos WHERE thumbnail_key = ANY($1::text[])": (
            "gallery_videos_thumbnail_idx"
        ),
        "SELECT id FROM gallery_videos WHERE preview_key = ANY($1::text[])": (
            "gallery_videos_preview_idx"
        ),
    }
    async with db_pool.acquire() as conn:
        # The generic plan: the sweep sends a different array every time.
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute("SET enable_seqscan = off")
        for query, index in checks.items():
            await conn.execute(f"PREPARE check_keys AS {query}")
            rows = await conn.fetch("EXPLAIN EXECUTE check_keys('{a,b}')")
            await conn.execute("DEALLOCATE check_keys")
            assert index in "\n".join(row[0] for row in rows), query


def test_upload_grace_outlasts_the_upload_url() -> None:
    assert upload_grace(3600) == timedelta(hours=24)
    assert upload_grace(7 * 24 * 3600) == timedelta(days=7)
