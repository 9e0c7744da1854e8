"""Worker faults as they happen: a worker SIGKILLed mid-encode, and what it leaves behind.

The API runs in the test process with no worker of its own; each worker is a separate
`videoforge serve --role worker` on the same database and data dir, with a lease of a few
seconds so a lost worker's job comes back within seconds.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from tests.conftest import MakeConfig
from tests.gallery_support import (  # noqa: F401 (fixtures)
    ALICE,
    Gallery,
    StartGallery,
    start_gallery_fixture,
)
from tests.jobs_support import create_job, media_fixture, upload_clip  # noqa: F401
from tests.media import Media
from tests.worker_support import (  # noqa: F401 (fixtures)
    StartWorker,
    poll_until,
    start_worker_fixture,
    wait_for_status,
)

LEASE = 3
QUALITIES = ["high", "medium", "low"]
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
def long_clip(media: Media) -> Path:
    """Long enough that its encode outlasts every wait below by many seconds."""
    return media.clip("long", 1280, 720, seconds=20)


async def _queue_job(api: Gallery, clip: Path) -> int:
    video = await upload_clip(api, ALICE, clip)
    job = await create_job(api, ALICE, video["s3Key"], outputFormats=QUALITIES)
    job_id: int = job["id"]
    return job_id


def _work_dirs(root: Path, job_id: int) -> list[Path]:
    return sorted(root.glob(f"videoforge-{job_id}-*"))


@pytest.mark.timeout(120)
async def test_worker_sigkilled_mid_encode_takes_its_ffmpeg_down_with_it(
    api: Gallery, start_worker: StartWorker, long_clip: Path
) -> None:
    job_id = await _queue_job(api, long_clip)
    a = start_worker(api.config, "a")
    await wait_for_status(api, job_id, ("PROCESSING",), [a])
    await a.running_children()

    os.kill(a.pid, signal.SIGKILL)  # the worker alone, as the OOM killer or `kill -9` would
    assert await a.exit_code(EXIT_TIMEOUT) < 0

    await poll_until(
        lambda: not a.children(),
        5,
        lambda: f"the worker's ffmpeg outlived it: {a.children()}\n{a.logs()}",
    )


@pytest.mark.timeout(120)
async def test_worker_starting_after_a_crash_reclaims_the_crashed_jobs_work_dir(
    api: Gallery, start_worker: StartWorker, long_clip: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work" / "shared"
    job_id = await _queue_job(api, long_clip)
    a = start_worker(api.config, "a", transcode_temp_dir=work)
    await wait_for_status(api, job_id, ("PROCESSING",), [a])
    [left] = _work_dirs(work, job_id)
    a.kill()
    assert await a.exit_code(EXIT_TIMEOUT) < 0
    assert left.is_dir()  # nothing ran to clean it up
    size = sum(p.stat().st_size for p in left.rglob("*") if p.is_file())

    b = start_worker(api.config, "b", transcode_temp_dir=work)
    await poll_until(lambda: not left.exists(), 30, lambda: f"{left} is still there\n{b.logs()}")

    reclaimed = re.search(r"reclaimed 1 stale work dir\(s\), (\d+) bytes", b.logs())
    assert reclaimed is not None, b.logs()
    assert int(reclaimed.group(1)) >= size > 0
