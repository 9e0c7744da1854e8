"""The bodies of `videoforge upload` and `videoforge jobs`: the API's client side, with progress
bars on stderr and what a script wants (the watch URL, the jobs table) on stdout."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import mimetypes
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from videoforge.client.api import ApiError, VideoforgeClient, connect
from videoforge.client.multipart import upload_multipart
from videoforge.client.resume import ResumeFile, cache_dir
from videoforge.model import JobStatus
from videoforge.storage.multipart import MIN_PART_BYTES, MiB
from videoforge.storage.validation import CONTENT_TYPES
from videoforge.transcode.ladder import QUALITY_NAMES

DEFAULT_SERVER = "http://127.0.0.1:8080"
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# The API's limits (web/schemas.py), checked before a long upload rather than after it.
MAX_TITLE = 200
MAX_DESCRIPTION = 5000
ERROR_WIDTH = 60


class UsageError(Exception):
    """The command line asks for something that cannot work: nothing was sent."""


def parse_qualities(value: str) -> list[str]:
    """`--transcode high,low`: known rendition names, each once, in the order given."""
    names = [name.strip().lower() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in QUALITY_NAMES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected a comma-separated list of {', '.join(QUALITY_NAMES)}"
        )
    return list(dict.fromkeys(names))


def run(command: Coroutine[Any, Any, int]) -> int:
    """Run a command body; its failures become a message on stderr and an exit status."""
    try:
        return asyncio.run(command)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except ApiError as exc:
        return _fail(exc.message, EXIT_FAILED)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)


def _fail(message: str, status: int) -> int:
    print(f"videoforge: {message}", file=sys.stderr)
    return status


# --- upload -------------------------------------------------------------------------------------


async def upload(args: argparse.Namespace) -> int:
    """Upload FILE, confirm it, and with --wait follow its job; the watch URL ends stdout."""
    path, size = _upload_source(args.file)
    content_type = args.content_type or _video_type(path)
    title = args.title if args.title is not None else path.stem[:MAX_TITLE]
    _check_texts(title, args.description)
    server, token = _connection(args)
    async with connect(server, token) as api:
        if size > args.multipart_threshold:
            resume = ResumeFile(cache_dir(), server, path)
            key = await _upload_in_parts(api, path, size, content_type, resume, args.part_size)
        else:
            resume = None
            key = await _upload_whole(api, path, size, content_type)
        try:
            video = await api.confirm(key, title, args.description, args.visibility, args.transcode)
        except ApiError as exc:
            if resume is not None and exc.status == 404:
                resume.forget()  # the object is gone: the next run uploads the file again
            raise
        if resume is not None:
            resume.forget()
        return await _report_upload(api, video, wait=args.wait)


async def _upload_whole(api: VideoforgeClient, path: Path, size: int, content_type: str) -> str:
    """One PUT of the whole file to a signed URL; the key to confirm."""
    ticket = await api.upload_url(path.name, content_type, size)
    with _upload_bar(path.name, size) as bar:
        await api.put_file(ticket.url, path, content_type, bar.update)
    return ticket.key


async def _upload_in_parts(
    api: VideoforgeClient,
    path: Path,
    size: int,
    content_type: str,
    resume: ResumeFile,
    part_size: int,
) -> str:
    """A multipart upload, resumed where an earlier run stopped; the key to confirm."""
    with contextlib.ExitStack() as stack:

        def open_bar(already: int) -> Callable[[int], object]:
            # Opened once the stored parts are known: a resumed upload starts part-way.
            bar = stack.enter_context(_upload_bar(path.name, size, already))
            return bar.update

        return await upload_multipart(api, path, size, content_type, resume, part_size, open_bar)


def parse_part_size(value: str) -> int:
    """`--part-size 16`: MiB, at least S3's minimum part size; in bytes."""
    return _mebibytes(value, MIN_PART_BYTES // MiB)


def parse_threshold(value: str) -> int:
    """`--multipart-threshold 64`: MiB (0: every file goes up in parts); in bytes."""
    return _mebibytes(value, 0)


def _mebibytes(value: str, minimum: int) -> int:
    if not value.isdigit() or int(value) < minimum:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected a whole number of MiB, at least {minimum}"
        )
    return int(value) * MiB


def _upload_source(name: str) -> tuple[Path, int]:
    """The file to upload and its size; a usage error if it cannot be uploaded."""
    path = Path(name)
    if not path.exists():
        raise UsageError(f"{name}: no such file")
    if not path.is_file():
        raise UsageError(f"{name}: not a regular file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{name}: not readable")
    size = path.stat().st_size
    if size == 0:
        raise UsageError(f"{name}: the file is empty")
    return path, size


def _video_type(path: Path) -> str:
    """The content type the name suggests, if a video one: the server takes `video/*` only."""
    # Our table first: the system's varies by machine (`.ts` can be Qt Linguist or TypeScript,
    # `.mts` a 3D model, `.m2ts` unknown), and camcorders write upper-case names.
    guessed = (
        CONTENT_TYPES.get(path.suffix.lower())
        or mimetypes.guess_type(path.name)[0]
        or "application/octet-stream"
    )
    if not guessed.startswith("video/"):
        raise UsageError(
            f"{path}: the name suggests {guessed}, not a video type; pass --content-type video/..."
        )
    return guessed


def _check_texts(title: str, description: str) -> None:
    if not 1 <= len(title.strip()) <= MAX_TITLE:
        raise UsageError(f"the title must have 1 to {MAX_TITLE} characters")
    if len(description.strip()) > MAX_DESCRIPTION:
        raise UsageError(f"the description must have at most {MAX_DESCRIPTION} characters")


async def _report_upload(api: VideoforgeClient, video: dict[str, Any], *, wait: bool) -> int:
    job_id = video.get("jobId")
    if job_id is None:
        summary = f"video {video['id']} uploaded, not transcoded"
    elif not wait:
        summary = f"video {video['id']}, job {job_id} queued: videoforge jobs --watch {job_id}"
    else:
        # Said before following: the upload is done, and an interrupted wait must not make
        # anyone upload the file a second time to get it.
        print(
            f"videoforge: video {video['id']} uploaded, job {job_id} queued; "
            f"interrupting now stops only the following (videoforge jobs --watch {job_id})",
            file=sys.stderr,
        )
        job = await follow(api, job_id)
        if job["status"] != JobStatus.COMPLETED:
            return _job_failed(job)
        summary = f"video {video['id']}, job {job_id} COMPLETED"
    print(f"# {summary}")
    print(api.watch_url(video["id"]))
    return 0


def _upload_bar(name: str, size: int, already: int = 0) -> tqdm[Any]:
    return tqdm(
        total=size,
        initial=already,
        desc=name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        dynamic_ncols=True,
    )


# --- jobs ---------------------------------------------------------------------------------------


async def jobs(args: argparse.Namespace) -> int:
    """List the caller's jobs as a table, or with --watch follow one to its end."""
    server, token = _connection(args)
    async with connect(server, token) as api:
        if args.watch is not None:
            return await _watch(api, args.watch)
        found, total = await api.jobs(args.status)
    if not found:
        print("no jobs", file=sys.stderr)
        return 0
    print(format_jobs(found))
    if total > len(found):
        print(f"(the newest {len(found)} of {total} jobs)", file=sys.stderr)
    return 0


async def _watch(api: VideoforgeClient, job_id: int) -> int:
    job = await follow(api, job_id)
    print(f"job {job_id} {job['status']}")
    if job["status"] != JobStatus.COMPLETED:
        return _job_failed(job)
    if job.get("galleryVideoId") is not None:
        print(api.watch_url(job["galleryVideoId"]))
    return 0


def format_jobs(found: Sequence[dict[str, Any]]) -> str:
    """A plain-text table: id, status, progress, created (UTC), error (its first line, cut)."""
    rows = [("ID", "STATUS", "PROGRESS", "CREATED (UTC)", "ERROR")]
    for job in found:
        error = (job.get("errorText") or "").strip().splitlines()
        first = error[0] if error else ""
        if len(first) > ERROR_WIDTH:
            first = first[: ERROR_WIDTH - 3] + "..."
        created = (job.get("createdAt") or "")[:19].replace("T", " ")
        rows.append((str(job["id"]), job["status"], f"{job['progress']}%", created, first))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(_row(row, widths) for row in rows)


def _row(row: Sequence[str], widths: Sequence[int]) -> str:
    # The id and progress read best right-aligned; the last column has no width to pad to.
    cells = [
        cell.rjust(width) if index in (0, 2) else cell.ljust(width)
        for index, (cell, width) in enumerate(zip(row, widths, strict=False))
    ]
    return "  ".join([*cells, row[-1]]).rstrip()


# --- shared -------------------------------------------------------------------------------------


async def follow(api: VideoforgeClient, job_id: int) -> dict[str, Any]:
    """Draw the job's progress (0-100, its status as the label) until it ends; the final job."""
    job: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        bar = None
        async for event in api.follow_job(job_id):
            job = event.job
            # Opened at the first event: a job that cannot be followed draws no empty bar.
            bar = bar or stack.enter_context(_job_bar())
            # A retried job starts again from 0: set the bar, do not add to it.
            bar.n = 100 if job["status"] == JobStatus.COMPLETED else job["progress"]
            bar.set_description_str(f"job {job_id} {job['status']}", refresh=False)
            bar.refresh()
    return job


def _job_bar() -> tqdm[Any]:
    # Percent per second says nothing: show n/100 and the time left instead.
    layout = "{desc}: {percentage:3.0f}%|{bar}| {n}/{total} [{elapsed}<{remaining}]"
    return tqdm(total=100, bar_format=layout, file=sys.stderr, dynamic_ncols=True)


def _job_failed(job: dict[str, Any]) -> int:
    reason = job.get("errorText") or "no reason given"
    return _fail(f"job {job['id']} {job['status']}: {reason}", EXIT_FAILED)


def _connection(args: argparse.Namespace) -> tuple[str, str]:
    """The server URL and the token: from the flags, else the environment."""
    server = args.server or os.environ.get("VIDEOFORGE_SERVER") or DEFAULT_SERVER
    if not server.startswith(("http://", "https://")):
        raise UsageError(f"server {server!r} is not an http:// or https:// URL")
    token = args.token or os.environ.get("VIDEOFORGE_TOKEN")
    if not token:
        raise UsageError(
            "no token: pass --token or set VIDEOFORGE_TOKEN (`videoforge token --user ID`)"
        )
    return server.rstrip("/"), token
