"""Supervised ffmpeg runs: failures, progress, timeouts and cancellation leave nothing behind."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from tests.media import Media, ffmpeg_children, media_library
from tests.worker_support import TAG_VARIABLE, poll_until, tagged
from videoforge.transcode.runner import (
    GCONV_PATH,
    TranscodeFailed,
    TranscodeTimedOut,
    child_env,
    run_capture,
    run_ffmpeg,
)


@pytest.fixture
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    return media_library(tmp_path_factory)


def endless(media: Media) -> list[str]:
    """An ffmpeg run that never ends on its own (a live-rate test pattern into nothing)."""
    argv = [str(media.binaries.ffmpeg), "-hide_banner", "-nostdin", "-nostats", "-loglevel"]
    argv += ["error", "-progress", "pipe:1", "-re", "-f", "lavfi", "-i", "testsrc=size=160x120"]
    return [*argv, "-f", "null", "-"]


async def wait_for_ffmpeg_child() -> None:
    for _ in range(500):
        if ffmpeg_children():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("ffmpeg never started")


async def test_run_ffmpeg_reports_increasing_progress_ending_at_one(media: Media) -> None:
    seen: list[float] = []
    argv = [str(media.binaries.ffmpeg), "-hide_banner", "-nostdin", "-nostats", "-progress"]
    argv += ["pipe:1", "-i", str(media.landscape()), "-c:v", "libx264", "-preset", "veryfast"]
    argv += ["-f", "null", "-"]
    await run_ffmpeg(argv, duration=3.0, timeout=60, on_progress=seen.append, min_interval=0)
    assert len(seen) >= 2 and seen[-1] == 1.0
    assert all(a < b for a, b in itertools.pairwise(seen))
    assert all(value < 1.0 for value in seen[:-1])


async def test_run_ffmpeg_with_failing_ffmpeg_raises_with_its_stderr(
    media: Media, tmp_path: Path
) -> None:
    argv = [str(media.binaries.ffmpeg), "-hide_banner", "-nostdin", "-i", str(tmp_path / "nope")]
    with pytest.raises(TranscodeFailed) as caught:
        await run_ffmpeg([*argv, "-f", "null", "-"], duration=1.0, timeout=30)
    assert "No such file or directory" in caught.value.message
    assert caught.value.details


async def test_run_ffmpeg_past_its_timeout_raises_and_kills_ffmpeg(media: Media) -> None:
    with pytest.raises(TranscodeTimedOut) as caught:
        await run_ffmpeg(endless(media), duration=3600, timeout=0.5)
    assert caught.value.message == "timed out"
    # Not an OSError: the job's retry policy must never take it for a passing disk error.
    assert not isinstance(caught.value, OSError)
    assert ffmpeg_children() == []


async def test_run_ffmpeg_when_cancelled_kills_ffmpeg(media: Media) -> None:
    task = asyncio.create_task(run_ffmpeg(endless(media), duration=3600, timeout=60))
    await wait_for_ffmpeg_child()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ffmpeg_children() == []


async def test_run_ffmpeg_when_progress_callback_fails_kills_ffmpeg(media: Media) -> None:
    def broken(fraction: float) -> None:
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        await run_ffmpeg(endless(media), duration=3600, timeout=60, on_progress=broken)
    assert ffmpeg_children() == []


async def test_run_capture_returns_status_and_output(media: Media) -> None:
    status, stdout, _ = await run_capture([str(media.binaries.ffprobe), "-version"], timeout=30)
    assert status == 0
    assert stdout.startswith("ffprobe version")


# A process that runs an endless ffmpeg through `run_ffmpeg`, as a worker would, until killed.
RUNS_ENDLESS_FFMPEG = """
import asyncio, json, sys
from videoforge.transcode.runner import run_ffmpeg
asyncio.run(run_ffmpeg(json.loads(sys.argv[1]), duration=3600, timeout=3600))
"""


@pytest.mark.timeout(60)
async def test_run_ffmpeg_whose_caller_is_sigkilled_takes_ffmpeg_down_with_it(
    media: Media,
) -> None:
    tag = uuid.uuid4().hex
    caller = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RUNS_ENDLESS_FFMPEG,
        json.dumps(endless(media)),
        env={**os.environ, TAG_VARIABLE: tag},
    )

    def ffmpegs() -> list[psutil.Process]:
        return [p for p in tagged(tag) if p.pid != caller.pid]

    try:
        await poll_until(ffmpegs, 20, lambda: "ffmpeg never started")
        caller.kill()  # SIGKILL: the caller runs no finally and no cleanup
        await caller.wait()
        await poll_until(
            lambda: not ffmpegs(), 5, lambda: f"ffmpeg outlived its caller: {ffmpegs()}"
        )
    finally:
        if caller.returncode is None:
            caller.kill()
            await caller.wait()
        for orphan in ffmpegs():
            orphan.kill()


def test_children_get_gconv_path_unless_the_operator_set_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GCONV_PATH", raising=False)
    assert child_env()["GCONV_PATH"] == GCONV_PATH
    assert "GCONV_PATH" not in os.environ  # our own process is left as it was
    monkeypatch.setenv("GCONV_PATH", "/opt/gconv")
    assert child_env()["GCONV_PATH"] == "/opt/gconv"
