"""Chunk tasks across worker processes: a worker SIGKILLed in the middle of a chunk costs that
chunk, and only that chunk, one more run; the job completes with nothing duplicated.

Each worker is a `videoforge serve --role worker` process on the API's database and data dir,
with a lease of a few seconds (`tests.worker_support`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gallery_support import ALICE, Gallery, expect
from tests.jobs_support import asset_kinds, create_job, expected_outputs, upload_clip
from tests.media import Media
from tests.worker_support import (
    StartWorker,
    all_logs,
    chunk_files_deleted,
    poll_until_async,
    wait_for_status,
)
from videoforge import keys

CHUNK_SECONDS = 8
CHUNKS = 3  # of a 22 s source: 8, 8 and 6 s

HELD_BY = """
SELECT index FROM job_chunks
WHERE job_id = $1 AND status = 'RUNNING' AND lease_owner LIKE '%:' || $2::text || ':%'
"""


@pytest.fixture
def clip(media: Media) -> Path:
    """Slow enough to encode that a chunk runs for a few seconds."""
    return media.clip("chunked-workers", 1280, 720, seconds=22)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("killed", ["chunk worker", "job worker"])
async def test_a_worker_killed_mid_chunk_costs_that_chunk_alone_one_more_run(
    api: Gallery, start_worker: StartWorker, clip: Path, killed: str
) -> None:
    """The job's own worker runs chunks too: killed, its job is taken over (a second attempt)
    and keeps every chunk finished so far."""
    workers = [
        start_worker(api.config, name, transcode_chunk_seconds=CHUNK_SECONDS) for name in "ab"
    ]
    for worker in workers:
        await worker.started()
    video = await upload_clip(api, ALICE, clip)
    job = await create_job(api, ALICE, video["s3Key"], outputFormats=["medium", "low"])
    job_id = job["id"]
    db = api.app[keys.DB]

    # The worker that runs the job plans the chunks; the other one takes chunk messages.
    await wait_for_status(api, job_id, ("PROCESSING",), workers)
    parent = await db.fetchval("SELECT lease_owner FROM jobs WHERE id = $1", job_id)
    runs_job = [f":{w.pid}:" in parent for w in workers]
    victim = workers[runs_job.index(killed == "job worker")]

    async def held() -> int | None:
        index: int | None = await db.fetchval(HELD_BY, job_id, str(victim.pid))
        return index

    index = await poll_until_async(held, 60, lambda: f"no chunk ran\n{all_logs(workers)}")
    await victim.running_children()
    victim.kill()  # mid-chunk: no release, no cleanup; the chunk's lease just lapses

    done = await wait_for_status(api, job_id, ("COMPLETED",), workers, timeout=120)
    logs = all_logs(workers)
    assert done["attempts"] == (2 if killed == "job worker" else 1), f"{done}\n{logs}"
    assert done["chunks"] == {"total": CHUNKS, "completed": CHUNKS}, done
    attempts = dict(
        await db.fetch("SELECT index, attempts FROM job_chunks WHERE job_id = $1", job_id)
    )
    assert attempts == {i: 2 if i == index else 1 for i in range(CHUNKS)}, f"{attempts}\n{logs}"
    await _assert_no_duplicates(api, job_id, logs)


async def _assert_no_duplicates(api: Gallery, job_id: int, logs: str) -> None:
    body = await expect(await api.request("GET", f"/api/jobs/{job_id}/assets", ALICE), 200)
    assets = body["assets"]
    assert asset_kinds(assets) == expected_outputs("low", "medium"), f"{assets}\n{logs}"
    await chunk_files_deleted(api, job_id, lambda: f"chunk files left\n{logs}")
