"""`videoforge upload` and `videoforge jobs`, run for real against a served app with workers."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.config import MakeConfig
from tests.gallery_support import (
    ALICE,
    Gallery,
    StartGallery,
    expect,
)
from tests.jobs_support import get_job
from tests.media import Media
from videoforge.client.api import CHUNK_BYTES, JobEvent, error_message, read_events
from videoforge.client.commands import format_jobs, parse_qualities

CLI_TIMEOUT = 90.0


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Served:
    """The served app, and the environment the command finds it (and Alice's token) in."""

    gallery: Gallery
    env: dict[str, str]

    @property
    def url(self) -> str:
        return self.gallery.config.server.base_url

    async def run(self, *args: str, **env: str) -> Result:
        """Run `videoforge ARGS` as a subprocess; the served app answers meanwhile."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "videoforge",
            *args,
            env={**self.env, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(CLI_TIMEOUT):
                out, err = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())


@pytest.fixture
async def served(start_gallery: StartGallery, make_config: MakeConfig) -> AsyncIterator[Served]:
    gallery = await start_gallery(make_config(queue={"poll_interval": 0.2}))
    env = {
        **os.environ,
        "VIDEOFORGE_SERVER": gallery.config.server.base_url,
        "VIDEOFORGE_TOKEN": gallery.authenticator.issue(ALICE),
    }
    yield Served(gallery, env)


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# --- upload, end to end -------------------------------------------------------------------------


async def test_upload_with_wait_follows_the_job_to_ready_and_ends_with_the_watch_url(
    served: Served, media: Media
) -> None:
    clip = media.small()
    result = await served.run("upload", str(clip), "--wait", "--transcode", "low")
    assert result.returncode == 0, result.stderr

    assert "small.mp4: 100%" in result.stderr  # the upload bar, in bytes
    assert "COMPLETED: 100%" in result.stderr and "100/100" in result.stderr  # the job bar
    watch_url = last_line(result.stdout)
    assert watch_url.startswith(f"{served.url}/videos/")
    video_id = int(watch_url.rsplit("/", 1)[1])
    video = await expect(await served.gallery.details(video_id, ALICE), 200)
    assert (video["title"], video["status"]) == ("small", "ready")
    assert video["fileSize"] == clip.stat().st_size

    watched = await served.run("jobs", "--watch", str(video["jobId"]))
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.splitlines() == [f"job {video['jobId']} COMPLETED", watch_url]


async def test_upload_without_wait_prints_the_ids_and_does_not_follow_the_job(
    served: Served, media: Media
) -> None:
    clip = media.corrupt()  # no real transcode: the job fails at its probe
    result = await served.run(
        "upload", str(clip), "--title", "Named", "--visibility", "unlisted", "--transcode", "low"
    )
    assert result.returncode == 0, result.stderr
    assert "corrupt.mp4: 100%" in result.stderr
    assert "job " not in result.stderr  # no job bar: nothing was followed
    summary, watch_url = result.stdout.splitlines()
    video_id = int(watch_url.rsplit("/", 1)[1])
    video = await expect(await served.gallery.details(video_id, ALICE), 200)
    job_id = video["jobId"]
    assert summary == f"# video {video_id}, job {job_id} queued: videoforge jobs --watch {job_id}"
    assert (video["title"], video["visibility"]) == ("Named", "unlisted")


async def test_upload_of_a_corrupt_clip_with_wait_exits_1_with_the_job_error(
    served: Served, media: Media
) -> None:
    result = await served.run("upload", str(media.corrupt()), "--wait", "--transcode", "low")
    assert result.returncode == 1
    assert result.stdout == ""
    job_id = int(result.stderr.split("videoforge: job ")[1].split()[0])
    job = await get_job(served.gallery, ALICE, job_id)
    assert job["status"] == "FAILED"
    assert f"videoforge: job {job_id} FAILED: {job['errorText']}" in result.stderr

    listed = await served.run("jobs")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["ID", "STATUS", "PROGRESS", "CREATED", "(UTC)", "ERROR"]
    assert row.split()[:2] == [str(job_id), "FAILED"]
    assert "Metadata extraction failed" in row

    watched = await served.run("jobs", "--watch", str(job_id))
    assert watched.returncode == 1
    assert watched.stdout == f"job {job_id} FAILED\n"
    assert job["errorText"] in watched.stderr


async def test_upload_to_s3_storage_streams_the_whole_file_in_chunks(
    start_gallery: StartGallery,
    make_config: MakeConfig,
    s3_storage_settings: dict[str, Any],
    tmp_path: Path,
) -> None:
    # S3 refuses chunked transfer encoding and a second Authorization on presigned PUTs.
    gallery = await start_gallery(make_config(storage=s3_storage_settings))
    served = Served(gallery, {**os.environ, "VIDEOFORGE_TOKEN": gallery.authenticator.issue(ALICE)})
    data = random.Random(3).randbytes(CHUNK_BYTES * 2 + 1000)  # three chunks; no video at all
    clip = tmp_path / "big.webm"
    clip.write_bytes(data)
    result = await served.run("upload", str(clip), "--server", served.url, "--transcode", "low")
    assert result.returncode == 0, result.stderr
    video_id = int(last_line(result.stdout).rsplit("/", 1)[1])
    video = await expect(await gallery.details(video_id, ALICE), 200)
    assert video["contentType"] == "video/webm"
    assert await gallery.storage.read_bytes(video["s3Key"]) == data


# --- refusals -----------------------------------------------------------------------------------


async def test_upload_with_a_bad_token_exits_1_with_the_servers_message(
    served: Served, media: Media
) -> None:
    result = await served.run("upload", str(media.small()), VIDEOFORGE_TOKEN="not.a.token")
    assert result.returncode == 1
    assert result.stderr.strip() == "videoforge: Invalid token"
    assert await served.gallery.storage.usage() == (0, 0)


async def test_upload_of_a_missing_file_exits_2_and_uploads_nothing(
    served: Served, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.mp4"
    result = await served.run("upload", str(missing))
    assert result.returncode == 2
    assert result.stderr.strip() == f"videoforge: {missing}: no such file"
    assert await served.gallery.storage.usage() == (0, 0)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("clip.mp4", ["--transcode", "low,4k"], "argument --transcode: 'low,4k': expected"),
        ("clip.mp4", ["--visibility", "secret"], "argument --visibility: invalid choice"),
        ("clip.mp4", ["--title", " "], "the title must have 1 to 200 characters"),
        ("clip.txt", [], "clip.txt: the name suggests text/plain, not a video type"),
        ("clip.vid", [], "clip.vid: the name suggests application/octet-stream, not a video"),
    ],
    ids=["transcode", "visibility", "title", "text-type", "unknown-type"],
)
async def test_upload_with_a_bad_option_exits_2_and_uploads_nothing(
    served: Served, tmp_path: Path, name: str, options: list[str], message: str
) -> None:
    clip = tmp_path / name
    clip.write_bytes(b"not looked at")
    result = await served.run("upload", str(clip), *options)
    assert result.returncode == 2
    assert message in result.stderr
    assert await served.gallery.storage.usage() == (0, 0)


async def test_token_and_server_flags_win_over_the_environment(served: Served) -> None:
    token = served.gallery.authenticator.issue(ALICE)
    # A dead server and a bad token in the environment: only the flags can make this work.
    env = {"VIDEOFORGE_SERVER": "http://127.0.0.1:9", "VIDEOFORGE_TOKEN": "bad"}
    result = await served.run("jobs", "--server", served.url, "--token", token, **env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "no jobs\n")

    unreachable = await served.run("jobs", "--token", token, **env)
    assert unreachable.returncode == 1
    assert "cannot talk to http://127.0.0.1:9" in unreachable.stderr


# --- pure pieces --------------------------------------------------------------------------------


def test_parse_qualities_keeps_order_and_drops_repeats() -> None:
    assert parse_qualities("Low, high,low") == ["low", "high"]
    for bad in ("", ",", "low,4k"):
        with pytest.raises(argparse.ArgumentTypeError, match="comma-separated list"):
            parse_qualities(bad)


async def test_read_events_skips_keepalives_and_joins_data_lines() -> None:
    stream = (
        'event: status\r\ndata: {"status": "PENDING",\r\ndata: "progress": 0}\r\n\r\n'
        ": keep-alive\n\n"
        'event: progress\ndata: {"status": "PROCESSING", "progress": 40}\n\n'
    )

    async def lines() -> AsyncIterator[bytes]:
        for line in stream.splitlines(keepends=True):  # as aiohttp's StreamReader yields them
            yield line.encode()

    events = [event async for event in read_events(lines())]
    assert events == [
        JobEvent("status", {"status": "PENDING", "progress": 0}),
        JobEvent("progress", {"status": "PROCESSING", "progress": 40}),
    ]


def test_error_message_reads_our_json_and_s3_xml() -> None:
    assert error_message('{"error": "Invalid token"}') == "Invalid token"
    s3 = "<Error><Code>SignatureDoesNotMatch</Code><Message>No &amp; no</Message></Error>"
    assert error_message(s3) == "No & no"
    assert error_message("<html>502</html>") is None
    assert error_message("[1]") is None


def test_format_jobs_aligns_columns_and_cuts_long_errors() -> None:
    job = {"id": 7, "status": "FAILED", "progress": 5, "createdAt": "2024-05-01T12:03:04.5Z"}
    table = format_jobs([{**job, "errorText": "x" * 80 + "\nsecond line"}, {**job, "id": 12}])
    assert table.splitlines() == [
        "ID  STATUS  PROGRESS  CREATED (UTC)        ERROR",
        " 7  FAILED        5%  2024-05-01 12:03:04  " + "x" * 57 + "...",
        "12  FAILED        5%  2024-05-01 12:03:04",
    ]
