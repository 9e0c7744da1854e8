"""`GET /metrics`: Prometheus text on real services, parsed as Prometheus would parse it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from tests.errors_support import assert_error
from tests.fixtures.config import MakeConfig
from tests.gallery_support import (
    ALICE,
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
from videoforge.app import Role, create_app
from videoforge.ops.metrics import RequestStats

IDLE = {"workers": 0}  # nobody takes a job: it stays PENDING, its message visible
FAST_QUEUE = {"poll_interval": 0.2}
VIDEO_ROUTE = "/api/gallery/videos/{id}"
REQUESTS = "videoforge_http_requests_total"


class Samples(dict[tuple[str, frozenset[tuple[str, str]]], float]):
    """One scrape's samples, by sample name and labels."""

    def get_value(self, name: str, **labels: str) -> float | None:
        return self.get((name, frozenset(labels.items())))

    def names(self) -> set[str]:
        return {name for name, _ in self}


async def scrape(gallery: Gallery) -> Samples:
    response = await gallery.request("GET", "/metrics")
    text = await response.text()
    assert response.status == 200, text
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    samples = Samples()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


async def scrape_until(gallery: Gallery, ready: Callable[[Samples], bool]) -> Samples:
    """Scrape until `ready`: a worker records a job's end just after the API shows it."""
    async with asyncio.timeout(10):
        while True:
            samples = await scrape(gallery)
            if ready(samples):
                return samples
            await asyncio.sleep(0.1)


async def test_metrics_are_prometheus_text_with_every_family_named(
    start_gallery: StartGallery,
) -> None:
    gallery = await start_gallery()
    response = await gallery.request("GET", "/metrics")
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    families = {f.name for f in text_string_to_metric_families(await response.text())}
    assert families >= {
        "videoforge_http_requests",
        "videoforge_http_request_duration_seconds",
        "videoforge_jobs",
        "videoforge_queue_messages",
        "videoforge_queue_oldest_message_age_seconds",
        "videoforge_job_duration_seconds",
        "videoforge_jobs_finished",
        "videoforge_ffmpeg_speed_ratio",
        "videoforge_workers",
    }


async def test_requests_are_counted_by_route_pattern_and_final_status(
    start_gallery: StartGallery,
) -> None:
    gallery = await start_gallery()
    for video_id in (123, 456):  # a JSON 404 made by the error middleware, on a matched route
        await assert_error(await gallery.details(video_id), 404, "Video not found")
    await assert_error(await gallery.request("GET", "/api/no-such-route"), 404, "Not found")
    assert (await gallery.request("GET", "/api/health")).status == 200

    samples = await scrape(gallery)
    assert samples.get_value(REQUESTS, method="GET", route=VIDEO_ROUTE, status="404") == 2
    assert samples.get_value(REQUESTS, method="GET", route="unmatched", status="404") == 1
    assert samples.get_value(REQUESTS, method="GET", route="/api/health", status="200") == 1
    latency = "videoforge_http_request_duration_seconds"
    assert samples.get_value(f"{latency}_count", method="GET", route=VIDEO_ROUTE) == 2
    assert samples.get_value(f"{latency}_bucket", method="GET", route=VIDEO_ROUTE, le="+Inf") == 2
    sum_ = samples.get_value(f"{latency}_sum", method="GET", route=VIDEO_ROUTE)
    assert sum_ is not None and sum_ > 0
    routes = {dict(labels)["route"] for name, labels in samples if name == REQUESTS}
    assert routes == {VIDEO_ROUTE, "unmatched", "/api/health"}  # never a raw path


async def test_pending_job_shows_in_jobs_gauge_and_queue_depth_when_no_worker_runs(
    start_gallery: StartGallery, make_config: MakeConfig
) -> None:
    gallery = await start_gallery(make_config(transcode=IDLE, queue=FAST_QUEUE))
    await create_job(gallery, ALICE, await gallery.uploaded_key(ALICE))

    samples = await scrape(gallery)
    assert samples.get_value("videoforge_jobs", status="PENDING") == 1
    assert samples.get_value("videoforge_jobs", status="COMPLETED") == 0
    assert samples.get_value("videoforge_queue_messages", state="visible") == 1
    assert samples.get_value("videoforge_queue_messages", state="in_flight") == 0
    assert samples.get_value("videoforge_queue_messages", state="dead_lettered") == 0
    age = samples.get_value("videoforge_queue_oldest_message_age_seconds")
    assert age is not None and age >= 0
    assert "videoforge_workers" not in samples.names()  # this process runs no worker


async def test_completed_job_is_timed_and_its_transcode_speed_observed_then_workers_idle(
    start_gallery: StartGallery, make_config: MakeConfig, media: Media
) -> None:
    gallery = await start_gallery(make_config(queue=FAST_QUEUE))
    video = await upload_clip(gallery, ALICE, media.small())
    job = await create_job(gallery, ALICE, video["s3Key"], outputFormats=["low"])
    await wait_for_job(gallery, ALICE, job["id"])
    assets = await expect(await gallery.request("GET", f"/api/jobs/{job['id']}/assets", ALICE), 200)
    download = f"/api/jobs/{job['id']}/assets/{assets['assets'][0]['id']}/download"
    # The handler raises `web.HTTPFound`: counted with its status as it passes the middleware.
    assert (await gallery.request("GET", download, ALICE, allow_redirects=False)).status == 302

    duration = "videoforge_job_duration_seconds"
    samples = await scrape_until(
        gallery, lambda s: s.get_value(f"{duration}_count", status="COMPLETED") == 1
    )
    route = "/api/jobs/{id}/assets/{asset_id}/download"
    assert samples.get_value(REQUESTS, method="GET", route=route, status="302") == 1
    assert samples.get_value("videoforge_jobs", status="COMPLETED") == 1
    assert samples.get_value("videoforge_jobs", status="PENDING") == 0
    assert _positive(samples.get_value(f"{duration}_sum", status="COMPLETED"))
    assert samples.get_value("videoforge_jobs_finished_total", status="COMPLETED") == 1
    assert samples.get_value("videoforge_ffmpeg_speed_ratio_count") == 1
    assert _positive(samples.get_value("videoforge_ffmpeg_speed_ratio_sum"))
    assert samples.get_value("videoforge_queue_messages", state="visible") == 0
    assert samples.get_value("videoforge_queue_messages", state="in_flight") == 0
    assert samples.get_value("videoforge_workers", state="busy") == 0
    assert samples.get_value("videoforge_workers", state="idle") == 1


async def test_failed_job_is_timed_under_failed_without_a_transcode_speed(
    start_gallery: StartGallery, make_config: MakeConfig
) -> None:
    gallery = await start_gallery(make_config(queue=FAST_QUEUE))
    job = await create_job(gallery, ALICE, await gallery.uploaded_key(ALICE))  # no video inside
    await wait_for_job(gallery, ALICE, job["id"], ("FAILED",))

    duration = "videoforge_job_duration_seconds"
    samples = await scrape_until(
        gallery, lambda s: s.get_value(f"{duration}_count", status="FAILED") == 1
    )
    assert _positive(samples.get_value(f"{duration}_sum", status="FAILED"))
    assert samples.get_value("videoforge_jobs_finished_total", status="FAILED") == 1
    assert samples.get_value("videoforge_jobs", status="FAILED") == 1
    assert samples.get_value("videoforge_ffmpeg_speed_ratio_count") == 0


async def test_metrics_with_unreadable_queue_answer_200_with_stale_queue_gauges(
    start_gallery: StartGallery, make_config: MakeConfig, caplog: pytest.LogCaptureFixture
) -> None:
    gallery = await start_gallery(make_config(transcode=IDLE, queue=FAST_QUEUE))
    job = await create_job(gallery, ALICE, await gallery.uploaded_key(ALICE))
    assert (await scrape(gallery)).get_value("videoforge_queue_messages", state="visible") == 1

    await gallery.app[keys.DB].execute("ALTER TABLE queue_messages RENAME TO queue_gone")
    # Cancelling a pending job touches only the jobs table: that gauge still moves.
    await expect(await gallery.request("POST", f"/api/jobs/{job['id']}/cancel", ALICE), 200)
    samples = await scrape(gallery)
    assert samples.get_value("videoforge_jobs", status="CANCELLED") == 1
    assert samples.get_value("videoforge_queue_messages", state="visible") == 1  # stale
    assert "cannot read the queue" in caplog.text


@pytest.mark.parametrize(("role", "workers"), [("api", None), ("worker", 2.0)])
async def test_worker_slots_are_reported_only_by_a_process_that_runs_workers(
    aiohttp_client: Any, make_config: MakeConfig, role: Role, workers: float | None
) -> None:
    config = make_config(transcode={"workers": 2}, queue=FAST_QUEUE)
    client = await aiohttp_client(create_app(config, role))
    response = await client.get("/metrics")
    assert response.status == 200
    samples = {
        (sample.name, sample.labels.get("state")): sample.value
        for family in text_string_to_metric_families(await response.text())
        for sample in family.samples
    }
    assert samples.get(("videoforge_workers", "idle")) == workers
    assert samples.get(("videoforge_workers", "busy")) == (0 if workers else None)


def _positive(value: float | None) -> bool:
    return value is not None and value > 0


def test_request_latency_lands_in_the_first_bucket_at_or_above_it() -> None:
    stats = RequestStats((0.01, 0.1))
    for seconds in (0.01, 0.05, 0.1, 3.0):
        stats.observe("GET", "/api/x", 200, seconds)

    requests, duration = list(stats.collect())
    assert [(s.labels["status"], s.value) for s in requests.samples] == [("200", 4)]
    buckets = {s.labels["le"]: s.value for s in duration.samples if s.name.endswith("_bucket")}
    assert buckets == {"0.01": 1, "0.1": 3, "+Inf": 4}
    total = next(s.value for s in duration.samples if s.name.endswith("_sum"))
    assert total == pytest.approx(3.16)
