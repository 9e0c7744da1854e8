"""Use case 2 through the HTTP API: jobs on real clips, real ffmpeg, both queue backends."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import pytest

from tests.errors_support import assert_error
from tests.fixtures.config import MakeConfig
from tests.gallery_support import (
    ALICE,
    BOB,
    Gallery,
    StartGallery,
    expect,
    signed,
)
from tests.jobs_support import (
    create_job,
    upload_clip,
    wait_for_job,
)
from tests.media import Media, ffmpeg_children

JOB_KEYS = {
    "id",
    "userId",
    "inputSource",
    "outputFormats",
    "status",
    "progress",
    "duration",
    "resolution",
    "videoCodec",
    "audioCodec",
    "errorText",
    "attempts",
    "galleryVideoId",
    "createdAt",
    "updatedAt",
    "startedAt",
    "completedAt",
}
ASSET_KEYS = {
    "id",
    "assetType",
    "format",
    "quality",
    "s3Key",
    "fileSize",
    "width",
    "height",
    "bitrate",
}


@pytest.fixture
async def gallery(start_gallery: StartGallery, make_config: MakeConfig) -> Gallery:
    return await start_gallery(make_config(queue={"poll_interval": 0.2}))


async def test_use_case_2_job_runs_to_completed_with_assets_on_each_queue_backend(
    start_gallery: StartGallery,
    make_config: MakeConfig,
    queue_settings: dict[str, Any],
    media: Media,
) -> None:
    gallery = await start_gallery(make_config(queue=queue_settings))
    video = await upload_clip(gallery, ALICE, media.landscape())

    job = await create_job(gallery, ALICE, video["s3Key"], outputFormats=["high", "medium", "low"])
    assert set(job) == JOB_KEYS
    assert (job["userId"], job["inputSource"], job["status"], job["progress"]) == (
        ALICE,
        video["s3Key"],
        "PENDING",
        0,
    )

    done = await wait_for_job(gallery, ALICE, job["id"])
    assert done["progress"] == 100
    assert (done["duration"], done["resolution"]) == (3.0, "1280x720")
    assert (done["videoCodec"], done["audioCodec"]) == ("h264", "aac")
    assert done["attempts"] == 1 and done["errorText"] is None

    body = await expect(await gallery.request("GET", f"/api/jobs/{job['id']}/assets", ALICE), 200)
    assets = body["assets"]
    assert all(set(a) == ASSET_KEYS for a in assets)
    by_type = {(a["assetType"], a["quality"]): a for a in assets}
    # A 720p source: no 1080p rendition (never upscale).
    assert set(by_type) == {
        ("thumbnail", None),
        ("gif", None),
        ("video", "medium"),
        ("video", "low"),
        ("hls", None),
        ("webp", None),
        ("storyboard", None),
        ("sprite", None),
    }
    prefix = f"videos/output/{job['id']}/"
    assert by_type[("storyboard", None)]["s3Key"] == prefix + "storyboard/storyboard.vtt"
    assert by_type[("sprite", None)]["s3Key"] == prefix + "storyboard/storyboard-000.jpg"
    assert by_type[("sprite", None)]["format"] == "jpg"
    assert by_type[("thumbnail", None)]["s3Key"] == prefix + "thumbnail.jpg"
    assert [by_type[(kind, None)]["format"] for kind in ("thumbnail", "gif")] == ["jpg", "gif"]
    assert by_type[("gif", None)]["s3Key"] == prefix + "preview.gif"
    # testsrc2's animated WebP is a fraction of its GIF: kept, beside the GIF.
    assert by_type[("webp", None)]["s3Key"] == prefix + "preview.webp"
    assert by_type[("webp", None)]["format"] == "webp"
    assert by_type[("video", "medium")]["s3Key"] == prefix + "medium.mp4"
    assert by_type[("video", "low")]["height"] == 480
    assert by_type[("hls", None)]["s3Key"] == prefix + "hls/master.m3u8"


async def test_download_redirects_to_a_signed_url_of_the_asset(
    gallery: Gallery, media: Media
) -> None:
    video = await upload_clip(gallery, ALICE, media.small())
    job = await create_job(gallery, ALICE, video["s3Key"])
    await wait_for_job(gallery, ALICE, job["id"])
    assets = (
        await expect(await gallery.request("GET", f"/api/jobs/{job['id']}/assets", ALICE), 200)
    )["assets"]
    rendition = next(a for a in assets if a["assetType"] == "video")
    path = f"/api/jobs/{job['id']}/assets/{rendition['id']}/download"
    response = await gallery.request("GET", path, ALICE, allow_redirects=False)
    assert response.status == 302
    status, data = await gallery.get_object(response.headers["Location"])
    assert status == 200 and len(data) == rendition["fileSize"]
    storyboard = next(a for a in assets if a["assetType"] == "storyboard")
    path = f"/api/jobs/{job['id']}/assets/{storyboard['id']}/download"
    response = await gallery.request("GET", path, ALICE, allow_redirects=False)
    # Through the signed index, as a player is given it: the sprites it names are signed too.
    assert "/api/storyboards/" in response.headers["Location"]
    status, data = await gallery.get_object(response.headers["Location"])
    assert status == 200 and data.startswith(b"WEBVTT\n\n")
    sprite_url = data.split(b"\n")[3].split(b"#xywh=")[0].decode()
    status, sprite = await gallery.get_object(sprite_url)
    assert status == 200 and sprite.startswith(b"\xff\xd8")  # a JPEG


async def test_confirm_with_transcode_makes_the_video_ready_with_its_metadata(
    gallery: Gallery, media: Media
) -> None:
    video = await upload_clip(gallery, ALICE, media.landscape(), transcode=["medium", "low"])
    assert isinstance(video["jobId"], int)
    await wait_for_job(gallery, ALICE, video["jobId"])

    details = await expect(await gallery.details(video["id"], ALICE), 200)
    assert details["status"] == "ready"
    assert (details["duration"], details["resolution"]) == (3.0, "1280x720")
    assert (details["videoCodec"], details["audioCodec"]) == ("h264", "aac")
    status, thumbnail = await gallery.get_object(details["thumbnailUrl"])
    assert status == 200 and thumbnail[:2] == b"\xff\xd8"  # a JPEG
    status, preview = await gallery.get_object(details["previewUrl"])
    assert status == 200 and preview[8:12] == b"WEBP"  # the smaller of the two previews
    listed = await gallery.listing(ALICE, mine="true")
    assert listed["videos"][0]["thumbnailUrl"]


async def test_stream_after_completion_gives_best_rendition_quality_choice_and_playable_hls(
    start_gallery: StartGallery,
    make_config: MakeConfig,
    storage_settings: dict[str, Any],
    media: Media,
) -> None:
    gallery = await start_gallery(make_config(storage=storage_settings))
    video = await upload_clip(
        gallery, ALICE, media.landscape(), transcode=["high", "medium", "low"]
    )
    await wait_for_job(gallery, ALICE, video["jobId"])

    stream = await expect(await gallery.stream(video["id"], ALICE), 200)
    assert (stream["quality"], stream["qualities"]) == ("medium", ["medium", "low"])
    status, data = await gallery.get_object(stream["streamUrl"])
    assert status == 200 and b"ftyp" in data[:16]
    low = await expect(
        await gallery.request("GET", f"/api/gallery/videos/{video['id']}/stream?quality=low"), 200
    )
    assert low["quality"] == "low" and "low.mp4" in low["streamUrl"]
    missing = await gallery.request("GET", f"/api/gallery/videos/{video['id']}/stream?quality=high")
    await assert_error(missing, 404, "Rendition not found")

    # A player given only the master URL fetches every playlist and segment through signed URLs.
    played = await asyncio.to_thread(
        subprocess.run,
        [
            str(media.binaries.ffmpeg),
            "-v",
            "error",
            "-i",
            stream["hlsUrl"],
            "-map",
            "0",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert played.returncode == 0, played.stderr


async def test_hls_playlist_with_tampered_token_is_refused(gallery: Gallery, media: Media) -> None:
    video = await upload_clip(gallery, ALICE, media.small(), transcode=["low"])
    await wait_for_job(gallery, ALICE, video["jobId"])
    hls_url = (await expect(await gallery.stream(video["id"]), 200))["hlsUrl"]
    job_id, expires, _signature = hls_url.split("/api/hls/")[1].split("/")[0].split(".")
    forged = hls_url.replace(f"{job_id}.{expires}", f"{int(job_id) + 1}.{expires}")
    async with gallery.http.get(signed(forged)) as response:
        await assert_error(response, 403, "Invalid or missing URL signature")
    async with gallery.http.get(signed(hls_url.replace("master.m3u8", "../../x.m3u8"))) as response:
        await assert_error(response, 400, "Invalid storage key: empty, '.' or '..' path segment")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"outputFormats": []}, "outputFormats"),
        ({"outputFormats": ["ultra"]}, "outputFormats"),
        ({"outputFormats": ["low", "low"]}, "outputFormats"),
        ({"outputFormats": "low"}, "outputFormats"),
        ({"inputSource": None}, "inputSource"),
        ({"priority": 1}, "priority"),
    ],
)
async def test_create_job_with_invalid_body_is_400(
    gallery: Gallery, body: dict[str, Any], field: str
) -> None:
    key = await gallery.uploaded_key(ALICE)
    response = await gallery.request("POST", "/api/jobs", ALICE, json={"inputSource": key, **body})
    result = await expect(response, 400)
    assert field in result["details"]


async def test_create_job_on_foreign_missing_or_forged_input_is_refused(gallery: Gallery) -> None:
    bobs = await gallery.uploaded_key(BOB)
    invalid = "Invalid storage key."
    for key, status, message, details in (
        (bobs, 403, "Access denied", None),
        ("gallery/alice/0-missing.mp4", 404, "Input source not found", None),
        ("gallery/alice/../bob/x.mp4", 400, f"inputSource: {invalid}", {"inputSource": [invalid]}),
    ):
        response = await gallery.request("POST", "/api/jobs", ALICE, json={"inputSource": key})
        await assert_error(response, status, message, details)
    listed = await expect(await gallery.request("GET", "/api/jobs", ALICE), 200)
    assert listed["pagination"]["total"] == 0


async def test_another_users_job_is_404_on_every_route(gallery: Gallery, media: Media) -> None:
    video = await upload_clip(gallery, ALICE, media.small(), transcode=["low"])
    job_id = video["jobId"]
    await wait_for_job(gallery, ALICE, job_id)
    for method, path in (
        ("GET", f"/api/jobs/{job_id}"),
        ("GET", f"/api/jobs/{job_id}/assets"),
        ("GET", f"/api/jobs/{job_id}/assets/1/download"),
        ("GET", f"/api/jobs/{job_id}/events"),
        ("POST", f"/api/jobs/{job_id}/cancel"),
    ):
        response = await gallery.request(method, path, BOB, allow_redirects=False)
        await assert_error(response, 404, "Job not found")
    no_token = await gallery.request("GET", f"/api/jobs/{job_id}")
    await assert_error(no_token, 401, "Authentication required")


async def test_job_list_is_the_callers_own_paginated_and_filtered(
    gallery: Gallery, media: Media
) -> None:
    first = await upload_clip(gallery, ALICE, media.small(), transcode=["low"])
    await wait_for_job(gallery, ALICE, first["jobId"])
    await upload_clip(gallery, BOB, media.small(), transcode=["low"])
    mine = await expect(await gallery.request("GET", "/api/jobs?limit=1", ALICE), 200)
    assert [j["id"] for j in mine["jobs"]] == [first["jobId"]]
    assert mine["pagination"] == {"total": 1, "page": 1, "limit": 1, "totalPages": 1}
    failed = await expect(await gallery.request("GET", "/api/jobs?status=FAILED", ALICE), 200)
    assert failed["jobs"] == []
    bad = await gallery.request("GET", "/api/jobs?status=DONE", ALICE)
    await assert_error(bad, 400, "status: Not a job status.", {"status": ["Not a job status."]})


async def test_corrupt_upload_fails_at_once_with_a_clear_error(
    gallery: Gallery, media: Media
) -> None:
    video = await upload_clip(gallery, ALICE, media.corrupt(), transcode=["low"])
    job = await wait_for_job(gallery, ALICE, video["jobId"], ("FAILED",))
    assert job["errorText"].startswith("Metadata extraction failed")
    assert job["attempts"] == 1
    details = await expect(await gallery.details(video["id"], ALICE), 200)
    assert details["status"] == "failed"


async def test_text_playlist_disguised_as_mp4_fails_without_reading_the_named_file(
    gallery: Gallery, media: Media
) -> None:
    disguised = media.disguised_playlist(secret=media.landscape())
    video = await upload_clip(gallery, ALICE, disguised, transcode=["low"])
    job = await wait_for_job(gallery, ALICE, video["jobId"], ("FAILED",))
    assert job["duration"] is None  # nothing was read through the playlist
    assets = await expect(await gallery.request("GET", f"/api/jobs/{job['id']}/assets", ALICE), 200)
    assert assets["assets"] == []


async def test_cancel_during_processing_stops_ffmpeg_and_ends_cancelled(
    gallery: Gallery, media: Media
) -> None:
    clip = media.clip("long", 1280, 720, seconds=20)
    video = await upload_clip(gallery, ALICE, clip, transcode=["high", "medium", "low"])
    await wait_for_job(gallery, ALICE, video["jobId"], ("PROCESSING",))
    response = await gallery.request("POST", f"/api/jobs/{video['jobId']}/cancel", ALICE)
    await expect(response, 200)
    job = await wait_for_job(gallery, ALICE, video["jobId"], ("CANCELLED",))
    assert job["progress"] < 100
    assert ffmpeg_children() == []
    details = await expect(await gallery.details(video["id"], ALICE), 200)
    assert details["status"] == "uploaded"  # the original is still there to watch


async def test_cancel_of_a_pending_job_ends_it_at_once(
    start_gallery: StartGallery, make_config: MakeConfig
) -> None:
    gallery = await start_gallery(make_config(transcode={"workers": 0}))  # nobody takes it
    job = await create_job(gallery, ALICE, await gallery.uploaded_key(ALICE))
    response = await gallery.request("POST", f"/api/jobs/{job['id']}/cancel", ALICE)
    cancelled = await expect(response, 200)
    assert cancelled["job"]["status"] == "CANCELLED"
    again = await gallery.request("POST", f"/api/jobs/{job['id']}/cancel", ALICE)
    await assert_error(again, 409, "Job is already CANCELLED")


async def test_events_stream_reports_each_change_and_closes_after_completed(
    gallery: Gallery, media: Media
) -> None:
    video = await upload_clip(gallery, ALICE, media.landscape(), transcode=["medium", "low"])
    response = await gallery.request("GET", f"/api/jobs/{video['jobId']}/events", ALICE)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events: list[tuple[str, dict[str, Any]]] = []
    kind = ""
    async with asyncio.timeout(90):
        async for raw in response.content:
            line = raw.decode().strip()
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((kind, json.loads(line.split(":", 1)[1])))
    statuses = [data["status"] for _, data in events]
    progress = [data["progress"] for _, data in events]
    assert statuses[-1] == "COMPLETED" and progress[-1] == 100
    assert progress == sorted(progress)
    assert len(set(zip(statuses, progress, strict=True))) == len(events)  # one per change
    assert events[0][0] == "status"
    # Every status from the first one seen on is reported, in order, however brief.
    flow = ["PENDING", "DOWNLOADING", "PROCESSING", "UPLOADING", "COMPLETED"]
    seen = list(dict.fromkeys(statuses))
    assert seen == flow[flow.index(seen[0]) :]
    assert [kind for kind, _ in events].count("status") == len(seen)
