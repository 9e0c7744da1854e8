"""Outputs kept for a retry: only a finished transcode for this very job is ever reused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from videoforge.db import jobs as jobs_db
from videoforge.db.jobs import Job
from videoforge.jobs.steps import FINISHED_FILE, finished_outputs, keep_for_retry, record_finished
from videoforge.transcode.pipeline import OutputFile


@pytest.fixture
async def job(db_pool: asyncpg.Pool) -> Job:
    return await jobs_db.insert_job(
        db_pool,
        user_id="alice",
        input_source="gallery/alice/1700000000000-clip.mp4",
        qualities=["medium", "low"],
        gallery_video_id=None,
    )


@pytest.fixture
def finished(tmp_path: Path, job: Job) -> list[OutputFile]:
    """A work dir as a finished transcode leaves it: the source, the outputs, the marker."""
    (tmp_path / "input").write_bytes(b"source")
    (tmp_path / "out" / "hls").mkdir(parents=True)
    outputs = [
        OutputFile("video", "low", tmp_path / "out" / "low.mp4", "mp4", 854, 480, 1_000_000),
        OutputFile("thumbnail", None, tmp_path / "out" / "thumbnail.jpg", "jpg", 854, 480, None),
        OutputFile("hls", None, tmp_path / "out" / "hls" / "master.m3u8", "hls", 854, 480, None),
    ]
    for output in outputs:
        output.path.write_bytes(b"data")
    record_finished(tmp_path, job, outputs)
    return outputs


def test_finished_outputs_of_this_job_are_read_back_as_made(
    tmp_path: Path, job: Job, finished: list[OutputFile]
) -> None:
    assert finished_outputs(tmp_path, job) == finished


@pytest.mark.parametrize(
    "change",
    [
        {"input_source": "gallery/alice/1700000000001-other.mp4"},
        {"output_format": "high,medium,low"},
        {"id": 999999},
    ],
)
def test_finished_outputs_made_for_another_source_qualities_or_job_are_not_reused(
    tmp_path: Path, job: Job, finished: list[OutputFile], change: dict[str, Any]
) -> None:
    assert finished_outputs(tmp_path, dataclasses.replace(job, **change)) is None


def test_finished_outputs_with_a_file_missing_are_not_reused(
    tmp_path: Path, job: Job, finished: list[OutputFile]
) -> None:
    finished[0].path.unlink()
    assert finished_outputs(tmp_path, job) is None


def test_work_dir_without_a_valid_marker_has_no_finished_outputs(
    tmp_path: Path, job: Job, finished: list[OutputFile]
) -> None:
    marker = tmp_path / FINISHED_FILE
    record = json.loads(marker.read_text())
    record["outputs"][0]["path"] = "../../etc/passwd"  # outside the work dir
    marker.write_text(json.dumps(record))
    assert finished_outputs(tmp_path, job) is None
    marker.write_text("{not json")
    assert finished_outputs(tmp_path, job) is None
    marker.unlink()
    assert finished_outputs(tmp_path, job) is None


def test_keep_for_retry_keeps_finished_outputs_and_drops_the_source(
    tmp_path: Path, job: Job, finished: list[OutputFile]
) -> None:
    assert keep_for_retry(tmp_path, job)
    assert not (tmp_path / "input").exists()
    assert finished_outputs(tmp_path, job) == finished


def test_keep_for_retry_of_an_unfinished_transcode_keeps_nothing(tmp_path: Path, job: Job) -> None:
    (tmp_path / "input").write_bytes(b"source")
    assert not keep_for_retry(tmp_path, job)
