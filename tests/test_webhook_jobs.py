"""Webhooks from real jobs: an upload transcoded by the app reports each step to its owner's
endpoint, and a worker process SIGKILLed right after a job's commit loses none of its events.

The second test runs the API in this process with no delivery loop of its own, and the worker
as a `videoforge serve --role worker` process (`tests.worker_support`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.config import MakeConfig
from tests.gallery_support import ALICE, StartGallery, expect
from tests.jobs_support import create_job, upload_clip, wait_for_job
from tests.media import Media
from tests.test_metrics import scrape_until
from tests.webhook_support import Received, StartReceiver
from tests.worker_support import LEASE, StartWorker, poll_until_async, wait_for_status
from videoforge import keys
from videoforge.db import webhooks as webhooks_db
from videoforge.gallery.present import SIGNED_URL_FIELDS
from videoforge.webhooks.events import EVENT_TYPES
from videoforge.webhooks.signing import new_secret

LOCAL = {"allow_http": True, "allow_private_networks": True}
JOB_EVENTS = ["video.uploaded", "job.started", "job.completed", "video.playable", "video.ready"]


def types(received: list[Received]) -> list[str]:
    return [r.payload["type"] for r in received]


async def test_a_transcoded_upload_reports_each_step_to_its_owner(
    start_gallery: StartGallery,
    make_config: MakeConfig,
    start_receiver: StartReceiver,
    media: Media,
) -> None:
    gallery = await start_gallery(make_config(webhooks=LOCAL))
    receiver = await start_receiver()
    db = gallery.app[keys.DB]
    secret = new_secret()
    receiver.secrets.append(secret)
    await webhooks_db.create_endpoint(db, ALICE, receiver.url, list(EVENT_TYPES), "", secret)

    video = await upload_clip(gallery, ALICE, media.small())
    job = await create_job(gallery, ALICE, video["s3Key"], outputFormats=["low"])
    done = await wait_for_job(gallery, ALICE, job["id"])
    received = await receiver.wait_for(lambda got: len(got) >= len(JOB_EVENTS))

    assert types(received) == JOB_EVENTS
    assert all(r.verified is not None for r in received), [r.headers for r in received]
    by_type = {r.payload["type"]: r.payload["data"] for r in received}
    # The job as the API shows it, as it was when the event happened.
    assert by_type["job.completed"] == done
    assert by_type["job.started"]["status"] == "DOWNLOADING"
    assert by_type["video.uploaded"]["status"] == "uploaded"
    details = await expect(await gallery.details(video["id"], ALICE), 200)
    assert details.pop("views") == by_type["video.ready"].pop("views") + 1  # this request's
    unsigned = {k: v for k, v in details.items() if k not in SIGNED_URL_FIELDS}
    assert by_type["video.ready"] == unsigned
    assert len({r.webhook_id for r in received}) == len(received)

    # The attempts are counted by result, and the outbox has nothing left to send.
    samples = await scrape_until(
        gallery,
        lambda s: (
            s.get_value("videoforge_webhook_deliveries_total", result="delivered")
            == len(JOB_EVENTS)
            and s.get_value("videoforge_webhook_backlog") == 0
        ),
    )
    assert samples.get_value("videoforge_webhook_backlog_oldest_age_seconds") == 0


@pytest.mark.timeout(120)
async def test_a_worker_killed_right_after_a_jobs_commit_still_delivers_its_event(
    start_gallery: StartGallery,
    make_config: MakeConfig,
    start_worker: StartWorker,
    start_receiver: StartReceiver,
    media: Media,
    tmp_path: Path,
) -> None:
    """The receiver is down while the job ends, so the worker that wrote the job's end cannot
    have delivered it when it is killed; a new worker process delivers it, with its first
    webhook-id."""
    api = await start_gallery(
        make_config(
            transcode={"workers": 0},
            queue={"visibility_timeout": LEASE, "poll_interval": 0.2},
            webhooks=LOCAL,
        ),
        role="api",
    )
    receiver = await start_receiver(default=503)
    db = api.app[keys.DB]
    secret = new_secret()
    receiver.secrets.append(secret)
    await webhooks_db.create_endpoint(db, ALICE, receiver.url, ["job.completed"], "", secret)
    # A short timeout: a delivery the killed worker had in flight is due again once its lease
    # (the timeout and 10 s) lapses.
    settings = {
        "webhooks_allow_http": "true",
        "webhooks_allow_private_networks": "true",
        "webhooks_timeout": "2",
    }
    first = start_worker(api.config, "first", webhooks_retry_delays="0.5,0.5,0.5,60", **settings)

    video = await upload_clip(api, ALICE, media.small())
    job = await create_job(api, ALICE, video["s3Key"], outputFormats=["low"])
    await wait_for_status(api, job["id"], ("COMPLETED",), [first])
    first.kill()
    await first.exit_code(timeout=10)
    failed = list(receiver.received)
    assert all(r.answered == 503 for r in failed)

    receiver.default = 204
    await db.execute("UPDATE webhook_deliveries SET next_attempt_at = now()")
    second = start_worker(api.config, "second", **settings)
    await second.started()
    received = await receiver.wait_for(lambda got: any(r.answered == 204 for r in got), 60)

    [delivered] = [r for r in received if r.answered == 204]
    assert delivered.verified is not None
    assert delivered.payload["type"] == "job.completed"
    assert delivered.payload["data"]["id"] == job["id"]
    assert {r.webhook_id for r in received} == {delivered.webhook_id}
    delivered_row = "SELECT attempts FROM webhook_deliveries WHERE status = 'DELIVERED'"
    attempts = await poll_until_async(
        lambda: db.fetchval(delivered_row), 10, lambda: "the delivery was not recorded"
    )
    # Every request reached the receiver, but one the killed worker was making may not have.
    assert attempts in (len(received), len(received) + 1)
