"""Worker faults as they happen: a worker SIGKILLed mid-encode, what it leaves behind, and a
storage outage in the middle of a job.

For the crashes, the API runs in the test process with no worker of its own; each worker is a
separate `videoforge serve --role worker` on the same database and data dir, with a lease of a
few seconds so a lost worker's job comes back within seconds. For the outages, the store is a
SeaweedFS of the test's own, really stopped and started again on the same ports.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.config import MakeConfig
from tests.fixtures.s3 import SeaweedFS, use_credentials
from tests.gallery_support import (
    ALICE,
    Gallery,
    StartGallery,
    expect,
)
from tests.jobs_support import get_job
from tests.media import Media
from tests.worker_support import (
    StartWorker,
    poll_until,
    queue_job,
    wait_for_status,
)
from videoforge import keys
from videoforge.config import Config
from videoforge.jobs.transfers import TransferRetry

FINAL = ("COMPLETED", "FAILED", "CANCELLED")
EXIT_TIMEOUT = 30.0


@pytest.fixture
def long_clip(media: Media) -> Path:
    """Long enough that its encode outlasts every wait below by many seconds."""
    return media.clip("long", 1280, 720, seconds=20)


def _work_dirs(root: Path, job_id: int) -> list[Path]:
    return sorted(root.glob(f"videoforge-{job_id}-*"))


@pytest.mark.timeout(120)
async def test_worker_sigkilled_mid_encode_takes_its_ffmpeg_down_with_it(
    api: Gallery, start_worker: StartWorker, long_clip: Path
) -> None:
    job_id = await queue_job(api, long_clip)
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
    job_id = await queue_job(api, long_clip)
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


# --- storage outages ---------------------------------------------------------------------------


@dataclass
class Store(SeaweedFS):
    """The test's own SeaweedFS, which goes down and comes back (see `SeaweedFS`)."""

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """A `[storage]` section on this store."""
        return {
            "backend": "s3",
            "bucket": "outage-test",
            "endpoint_url": self.server.endpoint_url,
            "region": self.server.region,
            "create_bucket": True,
            **overrides,
        }


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    store = Store.prepare(tmp_path / "seaweedfs")
    use_credentials(monkeypatch, store.server)
    store.start()
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture
def on_store(make_config: MakeConfig, store: Store, tmp_path: Path) -> MakeConfig:
    """A config on the test's store, with work dirs inside the test's tmp dir."""

    def make(storage: dict[str, Any] | None = None, **transcode: Any) -> Config:
        return make_config(
            storage=store.settings(**(storage or {})),
            transcode={"temp_dir": str(tmp_path / "work"), **transcode},
            queue={"poll_interval": 0.2},
        )

    return make


@pytest.fixture
def slow_clip(media: Media) -> Path:
    """Long enough that PROCESSING lasts several seconds."""
    return media.clip("slow", 1280, 720, seconds=12)


async def until(
    api: Gallery,
    job_id: int,
    what: str,
    check: Callable[[dict[str, Any]], object],
    timeout: float = 90,
) -> dict[str, Any]:
    """Poll the job until `check(job)`; fail with `what` was awaited and the last job seen."""
    job: dict[str, Any] = {}
    try:
        async with asyncio.timeout(timeout):
            while True:
                job = await get_job(api, ALICE, job_id)
                if check(job):
                    return job
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"job {job_id}: not {what} within {timeout} s: {job}") from None


async def logged(caplog: pytest.LogCaptureFixture, *words: str, timeout: float = 60) -> None:
    """Wait until a warning mentioning all `words` has been logged."""

    def found() -> bool:
        return any(
            r.levelno >= logging.WARNING and all(w in r.getMessage() for w in words)
            for r in caplog.records
        )

    await poll_until(found, timeout, lambda: f"no warning with {words}:\n{caplog.text}")


async def transcodes(api: Gallery) -> float:
    """How many transcodes the app's workers ran, from GET /metrics."""
    response = await api.request("GET", "/metrics")
    text = await response.text()
    found = re.search(r"^videoforge_ffmpeg_speed_ratio_count (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def _assert_stored(api: Gallery, job_id: int) -> None:
    body = await expect(await api.request("GET", f"/api/jobs/{job_id}/assets", ALICE), 200)
    assert body["assets"], body
    for asset in body["assets"]:
        assert await api.storage.head(asset["s3Key"]) is not None, asset


@pytest.mark.timeout(240)
async def test_storage_outage_during_download_is_ridden_out_within_the_attempt(
    start_gallery: StartGallery,
    on_store: MakeConfig,
    store: Store,
    slow_clip: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = await start_gallery(on_store(workers=0))
    job_id = await queue_job(api, slow_clip)
    await asyncio.to_thread(store.stop)
    # A worker that starts while its store is down (it does not need it to start).
    await start_gallery(on_store({"create_bucket": False}))
    await logged(caplog, f"job {job_id}:", "download")

    await asyncio.to_thread(store.start)
    done = await until(api, job_id, "final", lambda job: job["status"] in FINAL)

    assert (done["status"], done["attempts"], done["errorText"]) == ("COMPLETED", 1, None), done
    await _assert_stored(api, job_id)


@pytest.mark.timeout(240)
async def test_storage_outage_during_upload_is_ridden_out_within_the_attempt(
    start_gallery: StartGallery,
    on_store: MakeConfig,
    store: Store,
    slow_clip: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = await start_gallery(on_store())
    job_id = await queue_job(api, slow_clip)
    await until(api, job_id, "PROCESSING", lambda job: job["status"] == "PROCESSING")
    await asyncio.to_thread(store.stop)  # the encode needs no storage
    await logged(caplog, f"job {job_id}:", "upload")

    await asyncio.to_thread(store.start)
    done = await until(api, job_id, "final", lambda job: job["status"] in FINAL)

    assert (done["status"], done["attempts"], done["errorText"]) == ("COMPLETED", 1, None), done
    await _assert_stored(api, job_id)
    assert await transcodes(api) == 1


@pytest.mark.timeout(240)
async def test_upload_that_outlasts_its_retries_is_retried_from_the_kept_outputs_not_reencoded(
    start_gallery: StartGallery, on_store: MakeConfig, store: Store, slow_clip: Path
) -> None:
    api = await start_gallery(on_store())
    # A shorter budget than a minute, so that the outage outlasts it within seconds.
    workers = api.app[keys.WORKERS]
    short = TransferRetry(budget_seconds=8, backoff_seconds=(0.5, 1))
    workers.ctx = dataclasses.replace(workers.ctx, transfer_retry=short)
    job_id = await queue_job(api, slow_clip)
    await until(api, job_id, "PROCESSING", lambda job: job["status"] == "PROCESSING")
    await asyncio.to_thread(store.stop)

    failed = await until(
        api, job_id, "failed once", lambda job: job["attempts"] == 1 and job["errorText"]
    )
    assert "Failed to upload outputs" in failed["errorText"], failed
    # The next attempt reaches its upload with the store still down: it did not download.
    await until(
        api,
        job_id,
        "UPLOADING again",
        lambda job: job["attempts"] == 2 and job["status"] == "UPLOADING",
    )
    await asyncio.to_thread(store.start)
    done = await until(api, job_id, "final", lambda job: job["status"] in FINAL)

    assert (done["status"], done["attempts"], done["errorText"]) == ("COMPLETED", 2, None), done
    await _assert_stored(api, job_id)
    assert await transcodes(api) == 1  # encoded once, uploaded twice
