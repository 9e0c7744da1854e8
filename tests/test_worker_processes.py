"""Workers as real processes: a crash mid-job (and how soon its job is taken again), SIGTERM with
a short or a long grace, and rolling restarts that must cost a job nothing.

The API runs in the test process with no worker of its own; each worker is a separate
`videoforge serve --role worker` on the same database and data dir (local storage), with a
lease of a few seconds so a lost worker's job comes back within seconds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.fixtures.config import MakeConfig
from tests.gallery_support import (
    ALICE,
    Gallery,
    StartGallery,
    expect,
)
from tests.jobs_support import (
    asset_kinds,
    expected_outputs,
    get_job,
)
from tests.media import Media
from tests.worker_support import (
    LEASE,
    StartWorker,
    Worker,
    all_logs,
    queue_job,
    wait_for_status,
)
from videoforge import keys

# Long enough that the old keeper's extra time (a third of the lease, and a second) would show.
RECOVERY_LEASE = 10
LEASE_OF_JOB = "SELECT lease_owner, lease_expires_at FROM jobs WHERE id = $1"
# The test's own database holds this one job's messages only.
MESSAGE_HIDDEN_UNTIL = """
SELECT max(visible_at) AS visible_at FROM queue_messages
WHERE body = '{"jobId": ' || $1::bigint || '}' AND dead_lettered_at IS NULL
"""
# A 720p source: every output but the 1080p rendition (never upscaled), one row each.
EXPECTED_OUTPUTS = expected_outputs("low", "medium")
EXIT_TIMEOUT = 30.0


@pytest.fixture
def slow_clip(media: Media) -> Path:
    """Long enough that PROCESSING lasts several seconds."""
    return media.clip("slow", 1280, 720, seconds=12)


async def _assert_outputs(api: Gallery, job_id: int, logs: str) -> None:
    body = await expect(await api.request("GET", f"/api/jobs/{job_id}/assets", ALICE), 200)
    assets = body["assets"]
    assert asset_kinds(assets) == EXPECTED_OUTPUTS, f"{assets}\n{logs}"
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
    job_id = await queue_job(api, slow_clip)
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
    job_id = await queue_job(api, slow_clip)
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
    job_id = await queue_job(api, slow_clip)
    a = start_worker(api.config, "a", transcode_shutdown_grace=60)
    await wait_for_status(api, job_id, ("PROCESSING",), [a])

    a.terminate()
    done = await wait_for_status(api, job_id, ("COMPLETED",), [a], timeout=90)
    assert await a.exit_code(EXIT_TIMEOUT) == 0, a.logs()

    assert done["attempts"] == 1, f"{done}\n{a.logs()}"
    assert f"job {job_id}: COMPLETED" in a.logs()  # A finished it: no other worker ran
    assert a.children() == [], a.logs()
    await _assert_outputs(api, job_id, a.logs())


@pytest.mark.timeout(240)
async def test_three_rolling_sigterms_mid_job_cost_no_attempt_and_dead_letter_nothing(
    start_gallery: StartGallery,
    make_config: MakeConfig,
    start_worker: StartWorker,
    slow_clip: Path,
    queue_settings: dict[str, Any],
) -> None:
    # Three deliveries handed back by graceful shutdowns are as many as max_attempts: counted as
    # failed deliveries, the fourth receive would dead-letter a healthy job.
    api = await start_gallery(
        make_config(
            transcode={"workers": 0},
            queue={**queue_settings, "visibility_timeout": LEASE, "max_attempts": 3},
        )
    )
    job_id = await queue_job(api, slow_clip)
    workers: list[Worker] = []
    for name in ("a", "b", "c"):
        worker = start_worker(api.config, name, transcode_shutdown_grace=0.5)
        workers.append(worker)
        await wait_for_status(api, job_id, ("PROCESSING",), workers)
        await worker.running_children()
        worker.terminate()
        assert await worker.exit_code(EXIT_TIMEOUT) == 0, worker.logs()

    workers.append(start_worker(api.config, "d"))
    done = await wait_for_status(api, job_id, ("COMPLETED",), workers, timeout=90)

    logs = all_logs(workers)
    assert done["attempts"] == 1, f"{done}\n{logs}"
    assert (await api.app[keys.QUEUE].stats()).dead_lettered == 0, logs
    await _assert_outputs(api, job_id, logs)


@pytest.mark.timeout(240)
async def test_worker_killed_mid_job_is_reclaimed_once_its_lease_lapses_not_later(
    start_gallery: StartGallery,
    make_config: MakeConfig,
    start_worker: StartWorker,
    media: Media,
    db_pool: asyncpg.Pool,
    queue_settings: dict[str, Any],
) -> None:
    api = await start_gallery(
        make_config(
            transcode={"workers": 0},
            queue={**queue_settings, "visibility_timeout": RECOVERY_LEASE},
        )
    )
    job_id = await queue_job(api, media.clip("long", 1280, 720, seconds=20))
    a = start_worker(api.config, "a")
    await wait_for_status(api, job_id, ("PROCESSING",), [a])
    b = start_worker(api.config, "b")  # polling the queue while A runs
    await b.started()

    # Killed just after A renewed the message (on postgres, where that can be seen): the message
    # is then hidden for as long as it will ever be after A's last heartbeat.
    await _next_renewal(db_pool, job_id, queue_settings["backend"])
    a.kill()
    died = await db_pool.fetchrow(LEASE_OF_JOB, job_id)
    assert died is not None and died["lease_owner"] is not None, a.logs()
    taken = await _next_owner(db_pool, job_id, died["lease_owner"], [a, b])

    # Both lease expiries are `lease` after a write (A's last heartbeat, B's claim): their gap
    # is how long the job waited for another worker, by the database's clock.
    waited = (taken["lease_expires_at"] - died["lease_expires_at"]).total_seconds()
    logs = all_logs([a, b])
    print(f"job {job_id}: taken again {waited:.2f} s after A's last heartbeat")
    assert waited / RECOVERY_LEASE < 1.25, f"re-claimed {waited:.1f} s after A died\n{logs}"
    done = await wait_for_status(api, job_id, ("COMPLETED",), [a, b], timeout=90)
    assert done["attempts"] == 2, f"{done}\n{logs}"
    assert (await api.app[keys.QUEUE].stats()).dead_lettered == 0, logs
    await _assert_outputs(api, job_id, all_logs([a, b]))


async def _next_renewal(db_pool: asyncpg.Pool, job_id: int, backend: str) -> None:
    """Wait until the job's holder renews the message (postgres) or its lease (SQS)."""
    query = MESSAGE_HIDDEN_UNTIL if backend == "postgres" else LEASE_OF_JOB
    column = "visible_at" if backend == "postgres" else "lease_expires_at"
    before = await db_pool.fetchrow(query, job_id)
    assert before is not None
    async with asyncio.timeout(30):
        while True:
            now = await db_pool.fetchrow(query, job_id)
            assert now is not None
            if now[column] != before[column]:
                return
            await asyncio.sleep(0.02)


async def _next_owner(
    db_pool: asyncpg.Pool, job_id: int, previous: str, workers: list[Worker]
) -> asyncpg.Record:
    """The job's lease once another worker claimed it (seen within a heartbeat of the claim)."""
    try:
        async with asyncio.timeout(60):
            while True:
                row = await db_pool.fetchrow(LEASE_OF_JOB, job_id)
                assert row is not None
                if row["lease_owner"] not in (None, previous):
                    return row
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"job {job_id} not taken again\n{all_logs(workers)}") from None
