"""Work directories of jobs: made for a run, kept for a retry, reclaimed once stale.

A job runs in `{temp_dir}/videoforge-{jobId}-XXXXXXXX`, which holds a `.owner` file naming the
worker that made it and when its process started (a pid alone is not an identity: a restarted
container's worker is PID 1 again, and pids are reused). A worker that is SIGKILLed mid-job
leaves its directory behind (the input and every output so far: gigabytes for real uploads), so
each worker reclaims stale directories at start-up and then periodically.
A directory is stale unless
- this worker is using it, or keeps it for its job's next attempt (`release(keep=True)`);
- another live worker of this host made it (that worker runs the job, or keeps the directory
  for its retry, and deletes it itself), or the worker that made it (dead, or elsewhere) still
  holds the job's lease;
- it names no owner (it predates its owner file) and a live worker of this host holds the job's
  lease.
Nothing but a directory whose name matches the exact pattern is ever looked at or removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from videoforge.db import jobs as jobs_db
from videoforge.db.jobs import Lease
from videoforge.db.types import Executor
from videoforge.model import FINAL, JobStatus
from videoforge.support.digits import parse_digits

log = logging.getLogger(__name__)

PREFIX = "videoforge-"
# tempfile.mkdtemp's suffix: 8 characters of this alphabet.
PATTERN = re.compile(rf"{PREFIX}(?P<job>[0-9]+)-[a-z0-9_]{{8}}")
OWNER_FILE = ".owner"
# Outputs kept for a retry are worth keeping only until the job's next attempt, which the
# queue's backoff (at most 2 minutes) schedules; and a bounded number of them.
KEEP_SECONDS = 15 * 60
MAX_KEPT = 4
RECLAIM_SECONDS = 60.0


@dataclass(frozen=True)
class Found:
    """A directory on disk that matches the pattern."""

    path: Path
    job_id: int
    owner: str | None
    started: str | None = None  # the owner process's start time, as `process_started` gives it


@dataclass(frozen=True)
class Kept:
    path: Path
    since: float  # time.monotonic()


class WorkDirs:
    """This worker's work directories under `root`: those its jobs run in and those it keeps."""

    def __init__(self, root: Path, owner: str) -> None:
        self.root = root
        self.owner = owner
        self._in_use: set[Path] = set()
        self._kept: dict[int, Kept] = {}
        self._started = process_started(os.getpid()) or ""  # written into every owner file

    def create(self, job_id: int) -> Path:
        """A fresh, empty directory for one attempt of `job_id`, marked as ours."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{job_id}-", dir=self.root))
        self._in_use.add(path)
        (path / OWNER_FILE).write_text(f"{self.owner}\n{self._started}")
        return path

    def take_kept(self, job_id: int) -> Path | None:
        """The directory kept from an earlier attempt of `job_id`, now in use again; or None."""
        kept = self._kept.pop(job_id, None)
        if kept is None:
            return None
        self._in_use.add(kept.path)
        return kept.path

    def release(self, path: Path, job_id: int, *, keep: bool = False) -> None:
        """Done with `path`: delete it, or keep it for the job's next attempt on this worker."""
        self._in_use.discard(path)
        if not keep:
            shutil.rmtree(path, ignore_errors=True)
            return
        if job_id in self._kept:
            self._drop(job_id)
        self._kept[job_id] = Kept(path, time.monotonic())
        while len(self._kept) > MAX_KEPT:
            self._drop(next(iter(self._kept)))  # the oldest

    def held(self) -> set[Path]:
        return self._in_use | {kept.path for kept in self._kept.values()}

    async def reclaim(self, db: Executor) -> tuple[int, int]:
        """Remove every stale directory under `root`: (how many, bytes)."""
        found = await asyncio.to_thread(scan, self.root)
        job_ids = sorted({f.job_id for f in found} | set(self._kept))
        leases = await jobs_db.leases(db, job_ids) if job_ids else {}
        self._forget_kept(leases)
        held = self.held()
        stale = [
            f.path
            for f in found
            if f.path not in held and not in_use_elsewhere(f, leases.get(f.job_id), self.owner)
        ]
        return len(stale), await asyncio.to_thread(remove_all, stale)

    def _forget_kept(self, leases: dict[int, Lease]) -> None:
        """Stop keeping what this worker can no longer use: a job that is not waiting for its
        next attempt (another worker runs it, or it ended), or one kept for too long."""
        now = time.monotonic()
        for job_id, kept in list(self._kept.items()):
            lease = leases.get(job_id)
            waiting = lease is not None and lease.status == JobStatus.PENDING
            if not waiting or now - kept.since > KEEP_SECONDS:
                del self._kept[job_id]

    def _drop(self, job_id: int) -> None:
        kept = self._kept.pop(job_id)
        shutil.rmtree(kept.path, ignore_errors=True)


def in_use_elsewhere(found: Found, lease: Lease | None, me: str) -> bool:
    """Whether a directory this worker does not hold may still be another worker's."""
    owner = found.owner
    if owner == me:  # this worker's own bookkeeping is the truth about its directories
        return False
    if owner is not None and runs_here(owner, found.started):
        # A live worker of this host looks after its own directories, whatever our database
        # says: it may be another deployment's, whose job ids mean other jobs.
        return True
    if lease is None or lease.status in FINAL or not lease.live:
        return False
    if owner is None:  # made before its owner file was written: judge by the job's lease
        return lease.owner != me and runs_here(lease.owner)
    # A worker that looks dead from here but still holds the lease may live where this host
    # cannot see it (another host, or another pid namespace sharing this temp dir): its lease
    # lapses soon if it is really gone.
    return lease.owner == owner


def local_pid(owner: str | None) -> int | None:
    """The process id of the worker `owner` (`host:pid:tag`) if it is one of this host's."""
    host, _, raw = (owner or "").rpartition(":")[0].rpartition(":")
    pid = parse_digits(raw)
    if host != socket.gethostname() or not pid:
        return None
    return pid


def runs_here(owner: str | None, started: str | None = None) -> bool:
    """Whether the worker `owner` is a live process of this host (the same process: started
    at `started`, when that is known)."""
    pid = local_pid(owner)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        pass
    return started is None or process_started(pid) == started


def process_started(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, from /proc), or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) is in parentheses and may hold spaces.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def scan(root: Path) -> list[Found]:
    """The directories under `root` whose names match the work-dir pattern."""
    found = []
    with contextlib.suppress(FileNotFoundError), os.scandir(root) as entries:
        for entry in entries:
            match = PATTERN.fullmatch(entry.name)
            if match and entry.is_dir(follow_symlinks=False):
                path = Path(entry.path)
                found.append(Found(path, int(match["job"]), *read_owner(path)))
    return found


def read_owner(path: Path) -> tuple[str | None, str | None]:
    """The owner file's worker id and its process's start time (each None if missing)."""
    try:
        lines = (path / OWNER_FILE).read_text().split("\n")
    except (OSError, UnicodeDecodeError):
        return None, None
    owner, started = lines[0].strip(), (lines[1].strip() if len(lines) > 1 else "")
    return owner or None, started or None


def remove_all(paths: list[Path]) -> int:
    """Delete these directory trees; the bytes their files held."""
    total = 0
    for path in paths:
        total += tree_size(path)
        shutil.rmtree(path, ignore_errors=True)
    return total


def tree_size(path: Path) -> int:
    total = 0
    for directory, _, files in os.walk(path):  # never follows links
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_size
    return total


async def reclaim_and_report(
    workdirs: WorkDirs, db: Executor, on_reclaimed: Callable[[int], None] | None = None
) -> None:
    """Reclaim stale work directories once, logging (and reporting) what was freed; a failure
    is logged, never raised: reclaiming is housekeeping."""
    try:
        count, size = await workdirs.reclaim(db)
    except Exception:
        log.exception("reclaiming stale work dirs under %s failed", workdirs.root)
        return
    if count:
        log.info("reclaimed %d stale work dir(s), %d bytes, under %s", count, size, workdirs.root)
        if on_reclaimed is not None:
            on_reclaimed(size)


async def reclaim_periodically(
    workdirs: WorkDirs,
    db: Executor,
    stopping: asyncio.Event,
    on_reclaimed: Callable[[int], None] | None = None,
    interval: float = RECLAIM_SECONDS,
) -> None:
    """Reclaim stale work directories now (at start-up) and every `interval` until `stopping`."""
    while not stopping.is_set():
        await reclaim_and_report(workdirs, db, on_reclaimed)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval)
