"""Stale work directories: which ones a worker reclaims, against real job leases in PostgreSQL.

Owners are real processes of this host (a live `sleep`, one that has exited) or names of
another host; the directories are real, under the test's own temp dir.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from videoforge.db import jobs as jobs_db
from videoforge.db.jobs import Job
from videoforge.jobs import workdirs
from videoforge.jobs.workdirs import OWNER_FILE, WorkDirs

HOST = socket.gethostname()
ME = f"{HOST}:{os.getpid()}:me000000"
ELSEWHERE = "another-host:4242:far00000"
LEASE = 30.0
SIZE = 3000


@pytest.fixture
async def live_owner() -> AsyncIterator[str]:
    """A worker id of a live process of this host."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(60)")
    try:
        yield f"{HOST}:{proc.pid}:live0000"
    finally:
        proc.kill()
        await proc.wait()


@pytest.fixture
async def dead_owner() -> str:
    """A worker id of a process of this host that has exited (as a SIGKILLed worker has)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await proc.wait()
    return f"{HOST}:{proc.pid}:dead0000"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "work"


@pytest.fixture
def mine(root: Path) -> WorkDirs:
    return WorkDirs(root, ME)


def work_dir(root: Path, job_id: int, owner: str | None, name: str = "") -> Path:
    """A directory as a worker leaves it: an input of SIZE bytes, and its owner file."""
    path = root / (name or f"videoforge-{job_id}-abcd_123")
    (path / "out").mkdir(parents=True)
    (path / "input").write_bytes(b"x" * SIZE)
    if owner is not None:
        (path / OWNER_FILE).write_text(owner)
    return path


async def pending(pool: asyncpg.Pool) -> Job:
    return await jobs_db.insert_job(
        pool,
        user_id="alice",
        input_source="gallery/alice/1-a.mp4",
        qualities=["low"],
        gallery_video_id=None,
    )


async def running(pool: asyncpg.Pool, owner: str) -> Job:
    job = await jobs_db.claim(pool, (await pending(pool)).id, owner, LEASE)
    assert job is not None
    return job


async def lapse(pool: asyncpg.Pool, job: Job) -> None:
    """The job's lease runs out, as a dead worker's does."""
    await pool.execute(
        "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1", job.id
    )


async def test_reclaim_removes_the_dir_of_a_job_whose_worker_died_and_reports_its_bytes(
    db_pool: asyncpg.Pool, mine: WorkDirs, root: Path, dead_owner: str
) -> None:
    job = await running(db_pool, dead_owner)
    left = work_dir(root, job.id, dead_owner)
    await lapse(db_pool, job)

    count, size = await mine.reclaim(db_pool)

    assert not left.exists()
    assert (count, size) == (1, SIZE + len(dead_owner))


async def test_reclaim_keeps_a_dead_looking_workers_dir_until_its_lease_lapses(
    db_pool: asyncpg.Pool, mine: WorkDirs, root: Path, dead_owner: str
) -> None:
    # It may live in another pid namespace sharing this temp dir: its lease says so.
    job = await running(db_pool, dead_owner)
    left = work_dir(root, job.id, dead_owner)

    assert await mine.reclaim(db_pool) == (0, 0)
    await lapse(db_pool, job)
    assert (await mine.reclaim(db_pool))[0] == 1
    assert not left.exists()


async def test_reclaim_removes_the_dir_of_an_earlier_process_with_this_very_pid(
    db_pool: asyncpg.Pool, mine: WorkDirs, root: Path
) -> None:
    # A restarted container's worker is PID 1 again: the start time tells the two apart.
    earlier = f"{HOST}:{os.getpid()}:old00000"
    left = work_dir(root, 7, f"{earlier}\n1")

    assert (await mine.reclaim(db_pool))[0] == 1
    assert not left.exists()


async def test_reclaim_keeps_the_dir_of_another_worker_of_this_very_process(
    db_pool: asyncpg.Pool, mine: WorkDirs, root: Path
) -> None:
    sibling = WorkDirs(root, f"{HOST}:{os.getpid()}:sib00000")
    path = sibling.create(8)

    assert await mine.reclaim(db_pool) == (0, 0)
    assert path.is_dir()


async def test_reclaim_keeps_the_dirs_of_a_live_local_worker_whatever_their_job(
    db_pool: asyncpg.Pool, mine: WorkDirs, root: Path, live_owner: str
) -> None:
    runs = await running(db_pool, live_owner)
    retries = await running(db_pool, live_owner)  # released for a retry, its outputs kept
    assert await jobs_db.release(db_pool, retries.id, live_owner, "upload failed")
    ended = await running(db_pool, live_owner)
    assert await jobs_db.finish(db_pool, ended.id, live_owner, "COMPLETED")
    # Another deployment's worker on this host: its job ids mean nothing in this database.
    dirs = [work_dir(root, job.id, live_owner) for job in (runs, retries, ended)]
    dirs.append(work_dir(root, 999999, live_owner))

    assert await mine.reclaim(db_pool) == (0, 0)
    assert all(path.is_dir() for path in dirs)


async def test_reclaim_of_a_dir_with_no_owner_keeps_it_only_under_a_live_local_lease(
    db_pool: asyncpg.Pool, mine: WorkDirs, root: Path, live_owner: str, dead_owner: str
) -> None:
    leased = work_dir(root, (await running(db_pool, live_owner)).id, None)
    orphans = [
        work_dir(root, (await running(db_pool, dead_owner)).id, None),
        work_dir(root, (await pending(db_pool)).id, None),
        work_dir(root, 999999, None),  # the job is gone altogether
    ]

    count, _ = await mine.reclaim(db_pool)

    assert count == len(orphans)
    assert leased.is_dir()
    assert not any(path.exists() for path in orphans)


async def test_reclaim_keeps_another_hosts_dir_only_while_that_host_holds_the_lease(
    db_pool: asyncpg.Pool, mine: WorkDirs, root: Path, live_owner: str
) -> None:
    held = work_dir(root, (await running(db_pool, ELSEWHERE)).id, ELSEWHERE)
    taken_over = work_dir(root, (await running(db_pool, live_owner)).id, ELSEWHERE)

    await mine.reclaim(db_pool)

    assert held.is_dir()
    assert not taken_over.exists()


async def test_reclaim_never_touches_anything_but_a_work_dir(
    db_pool: asyncpg.Pool, mine: WorkDirs, root: Path, tmp_path: Path, dead_owner: str
) -> None:
    job_id = (await running(db_pool, dead_owner)).id  # each would be stale, were it a work dir
    names = ["short", "abcd_1234", "ABCD_123", "abcd-123"]
    others = [work_dir(root, job_id, dead_owner, f"videoforge-{job_id}-{n}") for n in names]
    others.append(work_dir(root, job_id, dead_owner, f"other-{job_id}-abcd_123"))
    others.append(work_dir(root, job_id, dead_owner, f"videoforge-x{job_id}-abcd_123"))
    a_file = root / f"videoforge-{job_id}-file0000"
    a_file.write_bytes(b"keep")
    a_link = root / f"videoforge-{job_id}-link0000"  # to a directory elsewhere
    target = work_dir(tmp_path / "elsewhere", job_id, dead_owner)
    a_link.symlink_to(target)

    assert await mine.reclaim(db_pool) == (0, 0)
    assert all(path.exists() for path in [*others, a_file, a_link, target / "input"])


async def test_reclaim_keeps_this_workers_dirs_while_in_use_and_kept_while_the_job_waits(
    db_pool: asyncpg.Pool, mine: WorkDirs
) -> None:
    job = await running(db_pool, ME)
    path = mine.create(job.id)
    assert workdirs.read_owner(path) == (ME, workdirs.process_started(os.getpid()))
    assert await mine.reclaim(db_pool) == (0, 0)

    assert await jobs_db.release(db_pool, job.id, ME, "upload failed")
    mine.release(path, job.id, keep=True)
    assert await mine.reclaim(db_pool) == (0, 0)
    assert path.is_dir()

    assert await jobs_db.claim(db_pool, job.id, ELSEWHERE, LEASE)  # another worker's now
    assert (await mine.reclaim(db_pool))[0] == 1
    assert not path.exists()
    assert mine.take_kept(job.id) is None


async def test_release_keeping_more_than_max_kept_drops_the_oldest(
    db_pool: asyncpg.Pool, mine: WorkDirs
) -> None:
    paths = []
    for job_id in range(1, workdirs.MAX_KEPT + 2):
        paths.append(mine.create(job_id))
        mine.release(paths[-1], job_id, keep=True)

    assert [path.exists() for path in paths] == [False] + [True] * workdirs.MAX_KEPT
    assert mine.take_kept(1) is None
    assert mine.take_kept(2) == paths[1]


async def test_release_without_keep_removes_the_dir(mine: WorkDirs) -> None:
    path = mine.create(7)
    mine.release(path, 7)
    assert not path.exists()
    assert mine.take_kept(7) is None
