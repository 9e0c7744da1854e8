"""`videoforge upload` and `videoforge jobs`, run for real against a served app with workers."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import random
import signal
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.config import MakeConfig
from tests.gallery_support import (
    ALICE,
    Gallery,
    StartGallery,
    expect,
    signed,
)
from tests.jobs_support import get_job
from tests.media import Media
from videoforge import keys
from videoforge.client.api import (
    CHUNK_BYTES,
    JobEvent,
    Multipart,
    StoredPart,
    error_message,
    read_events,
)
from videoforge.client.commands import (
    format_jobs,
    parse_part_size,
    parse_qualities,
    parse_threshold,
)
from videoforge.client.multipart import Part, missing_parts, part_size_for, plan_parts
from videoforge.client.resume import ResumeFile, ResumeState, cache_dir
from videoforge.errors import BadRequest, ServiceUnavailable
from videoforge.storage.local import LocalStorage
from videoforge.storage.multipart import MAX_PARTS, MIN_PART_BYTES, MiB, UploadedPart

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

    async def start(self, *args: str, **env: str) -> asyncio.subprocess.Process:
        """Start `videoforge ARGS` as a subprocess; the served app answers meanwhile."""
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "videoforge",
            *args,
            env={**self.env, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def run(self, *args: str, **env: str) -> Result:
        """Run `videoforge ARGS` to its end."""
        proc = await self.start(*args, **env)
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
async def served(
    start_gallery: StartGallery, make_config: MakeConfig, tmp_path: Path
) -> AsyncIterator[Served]:
    gallery = await start_gallery(make_config(queue={"poll_interval": 0.2}))
    env = {
        **os.environ,
        "VIDEOFORGE_SERVER": gallery.config.server.base_url,
        "VIDEOFORGE_TOKEN": gallery.authenticator.issue(ALICE),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),  # resume state: the test's own
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
    # Before the job bar: whoever interrupts the wait knows the upload itself is done.
    said = f"video {video_id} uploaded, job {video['jobId']} queued; interrupting now stops only"
    assert said in result.stderr.split("COMPLETED: ")[0], result.stderr
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


# --- multipart uploads -------------------------------------------------------------------------

# 12 MiB in 5 MiB parts: 5 + 5 + 2, over a threshold of 8 MiB.
PARTS = ("--multipart-threshold", "8", "--part-size", "5")
BIG = 12 * MiB


def big_file(tmp_path: Path, seed: int = 12) -> tuple[Path, bytes]:
    data = random.Random(seed).randbytes(BIG)  # no video at all: its job fails, which is fine
    clip = tmp_path / "big.webm"
    clip.write_bytes(data)
    return clip, data


def resume_file(served: Served, clip: Path) -> ResumeFile:
    """The state file the command keeps for `clip` (as the command finds it: same env)."""
    return ResumeFile(cache_dir(served.env), served.url, clip)


async def stored_object(served: Served, result: Result) -> bytes:
    assert result.returncode == 0, result.stderr
    video_id = int(last_line(result.stdout).rsplit("/", 1)[1])
    video = await expect(await served.gallery.details(video_id, ALICE), 200)
    assert video["fileSize"] == BIG
    return await served.gallery.storage.read_bytes(video["s3Key"])


@dataclass
class PartGate:
    """The local backend's part receiver, counting the parts it is sent; while `holding`,
    every part after the first waits for `release`, then fails as a dropped connection would."""

    received: list[int]
    holding: bool = True
    release: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
def part_gate(served: Served, monkeypatch: pytest.MonkeyPatch) -> PartGate:
    storage = served.gallery.storage
    assert isinstance(storage, LocalStorage)
    receive = storage.receive_part
    gate = PartGate([])

    async def gated(key: str, upload_id: str, number: int, chunks: Any) -> UploadedPart:
        gate.received.append(number)
        if gate.holding and number > 1:
            await gate.release.wait()
            raise BadRequest("the client went away")
        return await receive(key, upload_id, number, chunks)

    monkeypatch.setattr(storage, "receive_part", gated)
    return gate


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_upload_of_a_large_file_goes_up_in_parts_and_stores_the_same_bytes(
    served: Served,
    start_gallery: StartGallery,
    make_config: MakeConfig,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    backend: str,
) -> None:
    if backend == "s3":
        settings = request.getfixturevalue("s3_storage_settings")
        gallery = await start_gallery(make_config(storage=settings))
        env = {**served.env, "VIDEOFORGE_SERVER": gallery.config.server.base_url}
        served = Served(gallery, {**env, "VIDEOFORGE_TOKEN": gallery.authenticator.issue(ALICE)})
    clip, data = big_file(tmp_path)
    result = await served.run("upload", str(clip), *PARTS, "--transcode", "low")
    assert "big.webm: 100%" in result.stderr
    stored = await stored_object(served, result)
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()
    assert not resume_file(served, clip).path.exists()  # gone once confirmed
    # Under the threshold, the same file goes up in one PUT, as before.
    single = await served.run("upload", str(clip), "--transcode", "low")
    assert await stored_object(served, single) == data


async def test_upload_killed_mid_way_resumes_with_the_same_command_sending_only_missing_parts(
    served: Served, part_gate: PartGate, tmp_path: Path
) -> None:
    clip, data = big_file(tmp_path)
    command = ("upload", str(clip), *PARTS, "--transcode", "low")
    state_file = resume_file(served, clip)
    proc = await served.start(*command)
    try:
        async with asyncio.timeout(CLI_TIMEOUT):
            first = await first_part_landed(served, state_file, part_gate)
    finally:
        proc.kill()  # SIGKILL: no cleanup of any kind
        await proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    part_gate.release.set()  # the parts held back fail, as if the connection had dropped
    assert sorted(part_gate.received) == [1, 2, 3]
    assert stat.S_IMODE(state_file.path.stat().st_mode) == 0o600

    part_gate.holding, part_gate.received = False, []
    result = await served.run(*command)
    assert sorted(part_gate.received) == [2, 3]  # part 1 was not sent again
    stored = await stored_object(served, result)
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()
    assert first.etag == f'"{hashlib.md5(data[: 5 * MiB], usedforsecurity=False).hexdigest()}"'
    assert not state_file.path.exists()


async def first_part_landed(served: Served, state_file: ResumeFile, gate: PartGate) -> UploadedPart:
    """Wait for the command's state file, then for its upload's first part to be stored while
    the other two are held back."""
    while True:
        state = state_file.load()
        if state is not None and sorted(gate.received) == [1, 2, 3]:
            upload = state.upload
            parts = await served.gallery.storage.list_parts(upload.key, upload.upload_id)
            if parts:
                assert [part.number for part in parts] == [1]
                return parts[0]
        await asyncio.sleep(0.02)


@pytest.fixture
def confirm_fails_once(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's first confirm fails (503), after the upload's parts were assembled."""
    jobs = served.gallery.app[keys.JOBS]
    confirm = jobs.confirm_upload
    refusals = [ServiceUnavailable("The queue is unavailable")]

    async def confirm_failing_once(*args: Any, **kwargs: Any) -> Any:
        if refusals:
            raise refusals.pop()
        return await confirm(*args, **kwargs)

    monkeypatch.setattr(jobs, "confirm_upload", confirm_failing_once)


@pytest.mark.usefixtures("confirm_fails_once")
async def test_upload_stopped_after_its_parts_were_assembled_only_confirms_when_run_again(
    served: Served, part_gate: PartGate, tmp_path: Path
) -> None:
    part_gate.holding = False
    clip, data = big_file(tmp_path)
    command = ("upload", str(clip), *PARTS, "--transcode", "low")

    failed = await served.run(*command)
    assert failed.returncode == 1, failed.stderr
    state = resume_file(served, clip).load()
    assert state is not None and state.completed

    part_gate.received = []
    result = await served.run(*command)
    assert part_gate.received == []  # nothing sent again, nothing started again
    assert await stored_object(served, result) == data
    assert [upload async for upload in served.gallery.storage.pending_uploads()] == []
    assert not resume_file(served, clip).path.exists()


@pytest.mark.usefixtures("confirm_fails_once")
async def test_upload_whose_assembled_object_vanished_is_sent_again_by_the_next_run(
    served: Served, part_gate: PartGate, tmp_path: Path
) -> None:
    part_gate.holding = False
    clip, data = big_file(tmp_path)
    command = ("upload", str(clip), *PARTS, "--transcode", "low")
    assert (await served.run(*command)).returncode == 1
    state = resume_file(served, clip).load()
    assert state is not None and state.completed
    # What the storage sweep does to an upload left unconfirmed for a day.
    await served.gallery.storage.delete(state.upload.key)
    await served.gallery.app[keys.DB].execute(
        "DELETE FROM uploads WHERE s3_key = $1", state.upload.key
    )

    failed = await served.run(*command)
    assert failed.returncode == 1 and "Uploaded file not found" in failed.stderr, failed.stderr
    assert not resume_file(served, clip).path.exists()

    part_gate.received = []
    result = await served.run(*command)
    assert sorted(part_gate.received) == [1, 2, 3]
    assert await stored_object(served, result) == data


async def test_upload_whose_completion_answer_was_lost_confirms_without_sending_again(
    served: Served, part_gate: PartGate, tmp_path: Path
) -> None:
    part_gate.holding = False
    clip, data = big_file(tmp_path)
    body = {"filename": clip.name, "type": "video/webm", "size": BIG}
    started = await expect(
        await served.gallery.request("POST", "/api/uploads/s3/multipart", ALICE, json=body), 200
    )
    upload = Multipart(started["key"], started["uploadId"])
    storage = served.gallery.storage
    etags = []
    for number, offset in enumerate(range(0, BIG, 5 * MiB), start=1):
        url = await storage.presign_part(upload.key, upload.upload_id, number, 60)
        async with served.gallery.http.put(
            signed(url), data=io.BytesIO(data[offset : offset + 5 * MiB])
        ) as response:
            etags.append({"PartNumber": number, "ETag": response.headers["ETag"]})
    path = f"/api/uploads/s3/multipart/{upload.upload_id}/complete"
    query = {"key": upload.key}
    done = await served.gallery.request("POST", path, ALICE, params=query, json={"parts": etags})
    assert done.status == 200
    # The command saw none of it: its state says the parts are still going up.
    resume_file(served, clip).save(ResumeState(upload, 5 * MiB))

    part_gate.received = []
    result = await served.run("upload", str(clip), *PARTS, "--transcode", "low")
    assert part_gate.received == []
    assert await stored_object(served, result) == data


async def test_upload_with_a_stale_state_file_whose_upload_is_gone_starts_afresh(
    served: Served, part_gate: PartGate, tmp_path: Path
) -> None:
    clip, data = big_file(tmp_path)
    body = {"filename": clip.name, "type": "video/webm", "size": BIG}
    started = await expect(
        await served.gallery.request("POST", "/api/uploads/s3/multipart", ALICE, json=body), 200
    )
    gone = Multipart(started["key"], started["uploadId"])
    path = f"/api/uploads/s3/multipart/{gone.upload_id}"
    aborted = await served.gallery.request("DELETE", path, ALICE, params={"key": gone.key})
    assert aborted.status == 204
    state_file = resume_file(served, clip)
    state_file.save(ResumeState(gone, 5 * MiB))

    part_gate.holding = False
    result = await served.run("upload", str(clip), *PARTS, "--transcode", "low")
    assert sorted(part_gate.received) == [1, 2, 3]
    assert await stored_object(served, result) == data
    assert not state_file.path.exists()


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


def test_parts_are_the_preferred_size_unless_a_file_would_need_over_10000() -> None:
    assert plan_parts(BIG, 5 * MiB) == [
        Part(1, 0, 5 * MiB),
        Part(2, 5 * MiB, 5 * MiB),
        Part(3, 10 * MiB, 2 * MiB),
    ]
    assert part_size_for(BIG, 5 * MiB) == 5 * MiB
    assert part_size_for(BIG, 1) == MIN_PART_BYTES  # never under S3's minimum
    tebibyte = 1024**4
    assert part_size_for(tebibyte) == 105 * MiB  # 104.9 MiB, rounded up to whole MiB
    assert len(plan_parts(tebibyte, part_size_for(tebibyte))) <= MAX_PARTS


def test_missing_parts_are_those_not_stored_or_stored_with_another_size() -> None:
    parts = plan_parts(BIG, 5 * MiB)
    stored = {1: StoredPart(5 * MiB, '"a"'), 2: StoredPart(MiB, '"b"')}
    assert [part.number for part in missing_parts(parts, stored)] == [2, 3]


def test_resume_state_lives_in_the_xdg_cache_and_names_the_file_server_size_and_mtime(
    tmp_path: Path,
) -> None:
    home = Path.home() / ".cache" / "videoforge" / "uploads"
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "videoforge" / "uploads"
    assert cache_dir({"XDG_CACHE_HOME": "relative"}) == home  # invalid by the XDG spec
    assert cache_dir({}) == home

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    state = ResumeState(Multipart("gallery/alice/clip.mp4", "u1"), 5 * MiB)
    resume = ResumeFile(tmp_path, "http://a", clip)
    resume.save(state)
    assert ResumeFile(tmp_path, "http://a", clip).load() == state
    assert ResumeFile(tmp_path, "http://b", clip).load() is None  # another server
    os.utime(clip, ns=(0, 0))
    assert ResumeFile(tmp_path, "http://a", clip).load() is None  # the file changed
    resume.path.write_text("{not json")
    assert resume.load() is None
    resume.forget()
    assert list(tmp_path.glob("*.json")) == []


def test_part_size_and_threshold_take_whole_mebibytes() -> None:
    assert (parse_part_size("5"), parse_threshold("0")) == (5 * MiB, 0)
    for bad in ("4", "-1", "1.5", "big"):
        with pytest.raises(argparse.ArgumentTypeError, match="whole number of MiB"):
            parse_part_size(bad)
