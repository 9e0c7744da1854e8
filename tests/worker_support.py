"""Worker processes for the crash and shutdown tests: `videoforge serve --role worker` run as
real subprocesses beside an API served in the test process, on the same database and data dir.

Every process a worker starts carries a tag in its environment, so its ffmpeg can be found (and
ended) even once orphaned: ffmpeg runs in a session of its own, which the worker's process group
does not reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from tests.fixtures.config import MakeConfig
from tests.gallery_support import ALICE, Gallery, StartGallery
from tests.jobs_support import create_job, get_job, upload_clip
from tests.support import free_port
from videoforge.config import Config
from videoforge.storage.layout import OutputLayout

LEASE = 3
QUALITIES = ["high", "medium", "low"]
TAG_VARIABLE = "VFTEST_WORKER_TAG"  # not a VIDEOFORGE_ name: config never reads it
EXIT_TIMEOUT = 10.0

T = TypeVar("T")


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    tag: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def logs(self) -> str:
        return f"--- worker {self.name} (pid {self.pid}) ---\n" + self.log.read_text(
            errors="replace"
        )

    def children(self) -> list[psutil.Process]:
        """Live processes this worker started (ffmpeg, ffprobe), orphaned or not."""
        return [p for p in tagged(self.tag) if p.pid != self.pid]

    def terminate(self) -> None:
        """SIGTERM to the worker alone, as an orchestrator stopping it would send."""
        self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the worker's process group, then every process it left behind; reap it."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        for child in self.children():
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(EXIT_TIMEOUT)

    async def exit_code(self, timeout: float) -> int:
        """Wait (bounded) for the worker to exit; its exit status."""
        await poll_until(
            lambda: self.proc.poll() is not None,
            timeout,
            lambda: f"worker {self.name} still running after {timeout} s\n{self.logs()}",
        )
        assert self.proc.returncode is not None
        return self.proc.returncode

    async def started(self, timeout: float = 30.0) -> None:
        """Wait until the worker's pool runs (it logs its slots)."""
        await poll_until(
            lambda: "slot(s)" in self.logs(),
            timeout,
            lambda: f"worker {self.name} did not start within {timeout} s\n{self.logs()}",
        )

    async def running_children(self, timeout: float = 10.0) -> list[psutil.Process]:
        """The processes the worker runs now, once there are some (its job's ffmpeg)."""
        return await poll_until(
            self.children,
            timeout,
            lambda: f"worker {self.name} started no ffmpeg within {timeout} s\n{self.logs()}",
        )


async def poll_until(check: Callable[[], T], timeout: float, failure: Callable[[], str]) -> T:
    """The first truthy `check()`, polled for at most `timeout` seconds; else fail with
    `failure()`."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                if result := check():
                    return result
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(failure()) from None


async def poll_until_async(
    check: Callable[[], Awaitable[T | None]], timeout: float, failure: Callable[[], str]
) -> T:
    """The first `await check()` that is not None, polled for at most `timeout` seconds; else
    fail with `failure()`."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                if (result := await check()) is not None:
                    return result
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(failure()) from None


async def chunk_files_deleted(api: Gallery, job_id: int, failure: Callable[[], str]) -> None:
    """Wait for a job's chunk files to leave storage: its worker deletes them just after the
    job's COMPLETED commit, so a client may see COMPLETED a moment before."""
    prefix = OutputLayout(job_id).chunks_prefix

    async def all_gone() -> bool | None:
        left = [info.key async for info in api.storage.list(prefix)]
        return None if left else True

    await poll_until_async(all_gone, 10, failure)


def tagged(tag: str) -> list[psutil.Process]:
    """Live processes whose environment carries `tag` (zombies count as gone)."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(TAG_VARIABLE) == tag:
                found.append(proc)
    return found


StartWorker = Callable[..., Worker]


@pytest.fixture(name="start_worker")
def start_worker_fixture(tmp_path: Path, database_url: str) -> Iterator[StartWorker]:
    """Start `videoforge serve --role worker` processes for an API's config; all are killed
    (with whatever they left behind) at teardown, and their logs printed (shown on failure).

    Depends on `database_url` so the workers end before the test's database is dropped.
    """
    workers: list[Worker] = []

    def start(api: Config, name: str, **settings: Any) -> Worker:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOFORGE_")}
        values = {
            "CONFIG": "",
            "DATABASE_URL": api.database.url,
            "DATABASE_POOL_MAX_SIZE": 4,
            "SERVER_DATA_DIR": api.server.data_dir,
            "SERVER_PORT": free_port(),
            "SERVER_PUBLIC_URL": api.server.base_url,
            # The API's own queue, whichever backend (SQS: the same queues on the same server).
            **_queue_settings(api),
            "TRANSCODE_WORKERS": 1,
            # A killed worker's scratch files stay inside this test's tmp dir.
            "TRANSCODE_TEMP_DIR": tmp_path / "work" / name,
            **{key.upper(): value for key, value in settings.items()},
        }
        env.update({f"VIDEOFORGE_{key}": str(value) for key, value in values.items()})
        tag = f"{name}-{uuid.uuid4().hex}"
        env[TAG_VARIABLE] = tag
        env["PYTHONUNBUFFERED"] = "1"
        log = tmp_path / f"worker-{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "videoforge", "serve", "--role", "worker"],
                env=env,
                cwd=tmp_path,  # no ./config.toml here
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(name, proc, log, tag)
        workers.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            worker.kill()
        for worker in workers:
            print(worker.logs())


def _queue_settings(api: Config) -> dict[str, Any]:
    settings = dataclasses.asdict(api.queue)
    if api.queue.backend != "sqs":
        settings = {k: v for k, v in settings.items() if not k.startswith("sqs_")}
    return {f"QUEUE_{key.upper()}": value for key, value in settings.items()}


def all_logs(workers: list[Worker]) -> str:
    return "\n".join(worker.logs() for worker in workers)


async def wait_for_status(
    gallery: Gallery,
    job_id: int,
    statuses: tuple[str, ...],
    workers: list[Worker],
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Poll the API until the job is in one of `statuses`; fail with the workers' logs on a
    timeout or on a final status that was not asked for."""
    final = {"COMPLETED", "FAILED", "CANCELLED"}
    job: dict[str, Any] = {}
    try:
        async with asyncio.timeout(timeout):
            while True:
                job = await get_job(gallery, ALICE, job_id)
                if job["status"] in statuses:
                    return job
                assert job["status"] not in final, f"{job}\n{all_logs(workers)}"
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(
            f"job {job_id} not in {statuses} within {timeout} s: {job}\n{all_logs(workers)}"
        ) from None


@pytest.fixture(name="api")
async def worker_api_fixture(start_gallery: StartGallery, make_config: MakeConfig) -> Gallery:
    """The API alone: jobs are queued here and run only by the worker processes."""
    return await start_gallery(
        make_config(
            transcode={"workers": 0},
            queue={"visibility_timeout": LEASE, "poll_interval": 0.2},
        )
    )


async def queue_job(api: Gallery, clip: Path) -> int:
    """Upload `clip` as ALICE and queue a job of every rendition; its id."""
    video = await upload_clip(api, ALICE, clip)
    job = await create_job(api, ALICE, video["s3Key"], outputFormats=QUALITIES)
    job_id: int = job["id"]
    return job_id
