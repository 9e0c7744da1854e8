"""A message whose job another worker still leases, on both queue backends: the worker that
receives it keeps it (its holder may have died) and hands it back, uncounted, until the lease
lapses; then it takes the job.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from tests.fixtures.config import MakeConfig
from tests.gallery_support import (
    ALICE,
    StartGallery,
)
from tests.jobs_support import (
    upload_clip,
    wait_for_job,
)
from tests.media import Media
from videoforge import keys
from videoforge.db import jobs as jobs_db

LEASE = 3
VANISHED = "vanished-host:1:0000"


@pytest.mark.timeout(120)
async def test_message_of_a_job_leased_elsewhere_waits_for_the_lease_then_runs_the_job(
    start_gallery: StartGallery,
    make_config: MakeConfig,
    media: Media,
    db_pool: asyncpg.Pool,
    queue_settings: dict[str, Any],
) -> None:
    # max_attempts 2: the holder's attempt is one, so a single counted bounce would exhaust
    # the message before this worker could make the second.
    api = await start_gallery(
        make_config(
            transcode={"workers": 1},
            queue={**queue_settings, "visibility_timeout": LEASE, "max_attempts": 2},
        )
    )
    video = await upload_clip(api, ALICE, media.clip("leased", 640, 360))
    job = await jobs_db.insert_job(
        db_pool,
        user_id=ALICE,
        input_source=video["s3Key"],
        qualities=["low"],
        gallery_video_id=video["id"],
    )
    assert await jobs_db.claim(db_pool, job.id, VANISHED, LEASE) is not None
    await api.app[keys.QUEUE].send(job.id)

    # The holder stays alive for several leases (so the message comes back, and is handed back,
    # several times), then vanishes without a word.
    for _ in range(4 * LEASE):
        assert await jobs_db.heartbeat(db_pool, job.id, VANISHED, LEASE) is False
        await asyncio.sleep(1)
    done = await wait_for_job(api, ALICE, job.id)

    assert (done["attempts"], done["progress"]) == (2, 100), done
    assert (await api.app[keys.QUEUE].stats()).dead_lettered == 0
