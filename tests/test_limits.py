"""Per-user limits: the active-job cap and the rate limits answer 429 with Retry-After and
change nothing; admins are exempt; with Redis the count is shared by every API process."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
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
)

IDLE = {"workers": 0}  # nothing runs: every job stays PENDING, so it counts as active


async def start(start_gallery: StartGallery, make_config: MakeConfig, **limits: int) -> Gallery:
    off = {"max_active_jobs": 0, "jobs_per_minute": 0, "upload_urls_per_minute": 0}
    return await start_gallery(make_config(transcode=IDLE, limits={**off, **limits}))


async def post_job(gallery: Gallery, user: str, key: str) -> aiohttp.ClientResponse:
    return await gallery.request("POST", "/api/jobs", user, json={"inputSource": key})


async def job_count(gallery: Gallery, user: str) -> int:
    body = await expect(await gallery.request("GET", "/api/jobs", user), 200)
    total: int = body["pagination"]["total"]
    return total


async def expect_429(response: aiohttp.ClientResponse, limit: int) -> str:
    """The refusal's message, after checking it names the limit and says when to retry."""
    message = await assert_error(response, 429)
    assert str(limit) in message
    assert 1 <= int(response.headers["Retry-After"]) <= 61
    return message


async def test_job_rate_limit_refuses_the_job_over_the_limit_and_creates_nothing(
    start_gallery: StartGallery, make_config: MakeConfig
) -> None:
    gallery = await start(start_gallery, make_config, jobs_per_minute=2)
    key = await gallery.uploaded_key(ALICE)
    for _ in range(2):
        await expect(await post_job(gallery, ALICE, key), 201)

    await expect_429(await post_job(gallery, ALICE, key), 2)
    assert await job_count(gallery, ALICE) == 2

    # Per user: Bob has his own budget.
    await expect(await post_job(gallery, BOB, await gallery.uploaded_key(BOB)), 201)


async def test_active_job_cap_refuses_until_a_job_finishes(
    start_gallery: StartGallery, make_config: MakeConfig
) -> None:
    gallery = await start(start_gallery, make_config, max_active_jobs=2)
    key = await gallery.uploaded_key(ALICE)
    first = (await expect(await post_job(gallery, ALICE, key), 201))["job"]
    await expect(await post_job(gallery, ALICE, key), 201)

    message = await expect_429(await post_job(gallery, ALICE, key), 2)
    assert "active jobs" in message
    assert await job_count(gallery, ALICE) == 2

    await expect(await gallery.request("POST", f"/api/jobs/{first['id']}/cancel", ALICE), 200)
    await expect(await post_job(gallery, ALICE, key), 201)


async def test_active_job_cap_holds_under_concurrent_requests(
    start_gallery: StartGallery, make_config: MakeConfig
) -> None:
    gallery = await start(start_gallery, make_config, max_active_jobs=3)
    key = await gallery.uploaded_key(ALICE)
    responses = await asyncio.gather(*(post_job(gallery, ALICE, key) for _ in range(8)))
    assert sorted(r.status for r in responses) == [201] * 3 + [429] * 5
    for refused in (r for r in responses if r.status == 429):
        message = await expect_429(refused, 3)
        assert message.startswith("Too many active jobs"), message
    assert await job_count(gallery, ALICE) == 3


async def test_confirm_with_transcode_over_the_cap_records_no_video(
    start_gallery: StartGallery, make_config: MakeConfig
) -> None:
    gallery = await start(start_gallery, make_config, max_active_jobs=1)
    await expect(await post_job(gallery, ALICE, await gallery.uploaded_key(ALICE)), 201)
    key = await gallery.uploaded_key(ALICE)

    body = {"s3Key": key, "title": "Over the cap", "transcode": ["low"]}
    await expect_429(await gallery.confirm(ALICE, body), 1)
    assert await gallery.titles(ALICE, mine="true") == set()

    # Without a job the same confirm is fine: only the job was refused.
    await expect(await gallery.confirm(ALICE, {"s3Key": key, "title": "Kept"}), 201)


async def test_admins_are_not_limited(start_gallery: StartGallery, make_config: MakeConfig) -> None:
    gallery = await start(start_gallery, make_config, max_active_jobs=1, jobs_per_minute=1)
    key = await gallery.uploaded_key(ALICE)
    for _ in range(3):
        await expect(await post_job(gallery, ADMIN, key), 201)


@pytest.mark.parametrize("limit", [-1, "many"])
def test_limits_config_rejects_bad_values(make_config: MakeConfig, limit: Any) -> None:
    with pytest.raises(ValueError, match=r"limits\.jobs_per_minute"):
        make_config(limits={"jobs_per_minute": limit})


async def test_rate_limit_is_shared_by_api_processes_on_one_redis(
    start_gallery: StartGallery, make_config: MakeConfig, redis_url: str
) -> None:
    config = make_config(transcode=IDLE, cache={"url": redis_url}, limits={"jobs_per_minute": 3})
    first = await start_gallery(config)
    # A second app on the same database and Redis, on its own port.
    second = await start_gallery(
        make_config(transcode=IDLE, cache={"url": redis_url}, limits={"jobs_per_minute": 3})
    )
    key = await first.uploaded_key(ALICE)
    responses = [await post_job(app, ALICE, key) for app in (first, second, first, second)]
    assert [r.status for r in responses] == [201, 201, 201, 429]
    await expect_429(responses[-1], 3)


async def test_upload_url_rate_limit_refuses_the_url_over_the_limit(
    start_gallery: StartGallery, make_config: MakeConfig
) -> None:
    gallery = await start(start_gallery, make_config, upload_urls_per_minute=2)
    for _ in range(2):
        await expect(await gallery.generate_url(ALICE), 200)
    await expect_429(await gallery.generate_url(ALICE), 2)
    await expect(await gallery.generate_url(BOB), 200)
