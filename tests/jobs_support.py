"""Helpers for job tests: real clips uploaded through the API, and waiting on job states."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.gallery_support import Gallery, expect
from tests.media import Media, media_library

JOB_TIMEOUT = 90.0
# What a finished job of one of our clips (testsrc2, whose WebP is the smaller preview) has
# besides its renditions.
OTHER_OUTPUTS = [
    ("gif", None),
    ("hls", None),
    ("sprite", None),
    ("storyboard", None),
    ("thumbnail", None),
    ("webp", None),
]


def asset_kinds(assets: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """(assetType, quality) of each asset the API listed, sorted."""
    return sorted(((a["assetType"], a["quality"]) for a in assets), key=str)


def expected_outputs(*qualities: str) -> list[tuple[str, str | None]]:
    """What `asset_kinds` gives for a job that made these renditions (in its order)."""
    return sorted([*OTHER_OUTPUTS, *(("video", quality) for quality in qualities)], key=str)


@pytest.fixture(name="media")
def media_fixture(tmp_path_factory: pytest.TempPathFactory) -> Media:
    return media_library(tmp_path_factory)


@pytest.fixture(name="queue_settings", params=["postgres", "sqs"])
def queue_settings_fixture(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A [queue] section for each backend (SQS: moto, with per-test queues)."""
    if request.param == "postgres":
        return {"backend": "postgres", "poll_interval": 0.2}
    return sqs_queue_settings(request)


def sqs_queue_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A [queue] section on moto's SQS, with queues of this test's own."""
    endpoint = request.getfixturevalue("sqs_credentials")
    name = f"jobs-{request.node.name.split('[')[0][-40:]}-{id(request)}"
    return {
        "backend": "sqs",
        "sqs_endpoint_url": endpoint,
        "sqs_queue": name,
        "sqs_dead_letter_queue": name + "-dlq",
        "sqs_create_queues": True,
        "poll_interval": 0.2,
    }


async def upload_clip(gallery: Gallery, user: str, clip: Path, **confirm: Any) -> dict[str, Any]:
    """Upload a real clip through the API (generate-url, PUT, confirm)."""
    data = await asyncio.to_thread(clip.read_bytes)
    key = await gallery.uploaded_key(user, data, filename=clip.name)
    body = {"s3Key": key, "title": clip.stem, **confirm}
    record: dict[str, Any] = await expect(await gallery.confirm(user, body), 201)
    return record


async def create_job(gallery: Gallery, user: str, key: str, **body: Any) -> dict[str, Any]:
    response = await gallery.request("POST", "/api/jobs", user, json={"inputSource": key, **body})
    created: dict[str, Any] = await expect(response, 201)
    return created["job"]


async def get_job(gallery: Gallery, user: str, job_id: int) -> dict[str, Any]:
    body = await expect(await gallery.request("GET", f"/api/jobs/{job_id}", user), 200)
    job: dict[str, Any] = body["job"]
    return job


async def wait_for_job(
    gallery: Gallery, user: str, job_id: int, statuses: tuple[str, ...] = ("COMPLETED",)
) -> dict[str, Any]:
    """Poll until the job reaches one of `statuses` (or any final status, which then fails)."""
    final = {"COMPLETED", "FAILED", "CANCELLED"}
    async with asyncio.timeout(JOB_TIMEOUT):
        while True:
            job = await get_job(gallery, user, job_id)
            if job["status"] in statuses:
                return job
            assert job["status"] not in final, job
            await asyncio.sleep(0.2)
