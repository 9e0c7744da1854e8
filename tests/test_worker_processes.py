"""Workers as real processes: a crash mid-job, and SIGTERM with a short or a long grace.

The API runs in the test process with no worker of its own; each worker is a separate
`videoforge serve --role worker` on the same database and data dir (local storage), with a
lease of a few seconds so a lost worker's job comes back within seconds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import MakeConfig
from tests.gallery_support import (  # noqa: F401 (fixtures)
    ALICE,
    Gallery,
    StartGallery,
    expect,
    start_gallery_fixture,
)
from tests.jobs_support import create_job, get_job, media_fixture, upload_clip  # noqa: F401
from tests.media import Media
from tests.worker_support import (  # noqa: F401 (fixtures)
    StartWorker,
    all_logs,
    start_worker_fixture,
    wait_for_status,
)
from videoforge.db.jobs import RUNNING

LEASE = 3
LONG_LEASE = 6
# The test's own database holds this one job's message only.
HIDDEN_VS_LEASE = """
SELECT j.status, j.lease_expires_at, m.visible_at
FROM jobs AS j, queue_messages AS m
WHERE j.id = $1 AND m.dead_lettered_at IS NULL
"""
QUALITIES = ["high", "medium", "low"]
# A 720p source: every output but the 1080p rendition (never upscaled), one row each.
EXPECTED_OUTPUTS = [
    ("gif", None),
    ("hls", None),
    ("thumbnail", None),
    ("video", "low"),
    ("video", "medium"),
]
EXIT_TIMEOUT = 30.0


@pytest.fixture
async def api(start_gallery: StartGallery, make_config: MakeConfig) -> Gallery:
    """The API alone: jobs are queued here and run only by the worker processes."""
    return await start_gallery(
        make_config(
            transcode={"workers": 0},
            queue={"visibility_timeout": LEASE, "poll_interval": 0.2},
        )
    )


@pytest.fixture
def slow_clip(media: Media) -> Path:
    """Long enough that PROCESSING lasts several seconds."""
    return media.clip("slow", 1280, 720, seconds=12)


async def _queue_job(api: Gallery, clip: Path) -> int:
    video = await upload_clip(api, ALICE, clip)
    job = await create_job(api, ALICE, video["s3Key"], outputFormats=QUALITIES)
    job_id: int = job["id"]
    return job_id


async def _assert_outputs(api: Gallery, job_id: int, logs: str) -> None:
    body = await expect(await api.request("GET", f"/api/jobs/{job_id}/assets", ALICE), 200)
    assets = body["assets"]
    outputs = sorted(((a["assetType"], a["quality"]) for a in assets), key=str)
    assert outputs == EXPECTED_OUTPUTS, f"{assets}\n{logs}"
    assert len({a["s3Key"] for a in assets}) == len(assets), assets
    for asset in assets:
        stored = await api.storage.head(asset["s3Key"])
        assert stored is not None, f"{asset['s3Key']} is not in storage\n{logs}"
        if asset["assetType"] != "hls":  # an HLS asset's size is its whole directory's
            assert stored.size == asset["fileSize"], asset


@pytest.mark.timeout(180)
async def test_worker_killed_mid_job_is_replaced_and_job_completes_without_duplicate_assets(
    api: Gallery, start_worker: StartWorker, slow_clip: Path
) -> None:
    job_id = await _queue_job(api, slow_clip)
    a = start_worker(api.config, "a")
    await wait_for_status(api, job_id, ("PROCESSING",), [a])
    await a.running_children()

    a.kill()  # SIGKILL (its ffmpeg too): no release, no cleanup; its lease just lapses
    assert await a.exit_code(EXIT_TIMEOUT) < 0
    assert (await get_job(api, ALICE, job_id))["status"] == "PROCESSING"  # still A's, on paper
    b = start_worker(api.config, "b")
    done = await wait_for_status(api, job_id, ("COMPLETED",), [a, b], timeout=90)

    logs = all_logs([a, b])
    assert done["attempts"] == 2, f"{done}\n{logs}"
    assert (done["progress"], done["errorText"]) == (100, None), done
    await _assert_outputs(api, job_id, logs)


async def test_sigterm_with_short_grace_hands_the_running_job_to_another_worker(
    api: Gallery, start_worker: StartWorker, slow_clip: Path
) -> None:
    job_id = await _queue_job(api, slow_clip)
    a = start_worker(api.config, "a", transcode_shutdown_grace=0.5)
    await wait_for_status(api, job_id, ("PROCESSING",), [a])
    await a.running_children()

    a.terminate()
    assert await a.exit_code(EXIT_TIMEOUT) == 0, a.logs()
    assert a.children() == [], a.logs()  # its ffmpeg was killed, not orphaned
    job = await get_job(api, ALICE, job_id)
    # Interrupted, not failed: back in the queue with its attempt given back.
    assert (job["status"], job["attempts"], job["progress"]) == ("PENDING", 0, 0), (
        f"{job}\n{a.logs()}"
    )

    b = start_worker(api.config, "b")
    done = await wait_for_status(api, job_id, ("COMPLETED",), [a, b], timeout=90)

    assert done["attempts"] == 1, f"{done}\n{all_logs([a, b])}"
    await _assert_outputs(api, job_id, all_logs([a, b]))


@pytest.mark.timeout(180)
async def test_sigterm_with_long_grace_lets_the_running_job_finish(
    api: Gallery, start_worker: StartWorker, slow_clip: Path
) -> None:
    job_id = await _queue_job(api, slow_clip)
    a = start_worker(api.config, "a", transcode_shutdown_grace=60)
    await wait_for_status(api, job_id, ("PROCESSING",), [a])

    a.terminate()
    done = await wait_for_status(api, job_id, ("COMPLETED",), [a], timeout=90)
    assert await a.exit_code(EXIT_TIMEOUT) == 0, a.logs()

    assert done["attempts"] == 1, f"{done}\n{a.logs()}"
    assert f"job {job_id}: COMPLETED" in a.logs()  # A finished it: no other worker ran
    assert a.children() == [], a.logs()
    await _assert_outputs(api, job_id, a.logs())


@pytest.mark.timeout(180)
async def test_worker_killed_while_another_worker_polls_hands_it_the_job_once_the_lease_lapses(
    start_gallery: StartGallery,
    make_config: MakeConfig,
    start_worker: StartWorker,
    media: Media,
    db_pool: asyncpg.Pool,
) -> None:
    # A lease long enough that the message is extended only every few heartbeats. Were the
    # message to come back while the lease still runs, B would receive it, fail to claim the
    # job (A's lease is live) and drop it: the job would then wait minutes for the sweep.
    api = await start_gallery(
        make_config(
            transcode={"workers": 0},
            queue={"visibility_timeout": LONG_LEASE, "poll_interval": 0.2},
        )
    )
    job_id = await _queue_job(api, media.clip("long", 1280, 720, seconds=20))
    a = start_worker(api.config, "a")
    await wait_for_status(api, job_id, ("PROCESSING",), [a])
    b = start_worker(api.config, "b")

    # While A holds the job (through its first heartbeats), the message stays hidden for as long
    # as the lease runs.
    for _ in range(20):
        row = await db_pool.fetchrow(HIDDEN_VS_LEASE, job_id)
        assert row is not None and row["status"] in RUNNING, f"{row}\n{a.logs()}"
        assert row["visible_at"] >= row["lease_expires_at"], dict(row)
        await asyncio.sleep(0.1)
    await b.started()
    a.kill()
    done = await wait_for_status(api, job_id, ("COMPLETED",), [a, b], timeout=90)

    assert done["attempts"] == 2, f"{done}\n{all_logs([a, b])}"
    await _assert_outputs(api, job_id, all_logs([a, b]))
