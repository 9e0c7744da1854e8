"""A job's output keys: named in one place, read back, and built the same way in SQL."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from videoforge.db import jobs as jobs_db
from videoforge.model import JobStatus
from videoforge.storage.layout import OUTPUTS, PREVIEW, THUMBNAIL, OutputLayout, key_parts
from videoforge.transcode.command import Layout

JOB = OutputLayout(42)


def test_output_keys_of_a_job_are_under_its_prefix() -> None:
    assert JOB.prefix == "videos/output/42/"
    assert JOB.thumbnail == "videos/output/42/thumbnail.jpg"
    assert JOB.preview == "videos/output/42/preview.gif"
    assert JOB.rendition("high") == "videos/output/42/high.mp4"
    assert JOB.hls_prefix == "videos/output/42/hls/"
    assert JOB.master_playlist == "videos/output/42/hls/master.m3u8"
    assert JOB.key("hls/low/index.m3u8") == "videos/output/42/hls/low/index.m3u8"
    assert JOB.prefix.startswith(OUTPUTS)


def test_keys_of_the_transcodes_files_are_their_paths_in_its_output_dir() -> None:
    # The worker uploads each file at its path relative to the output dir.
    outdir = Path("/work/job-42/out")
    local = Layout(outdir)

    def key_of(path: Path) -> str:
        return JOB.key(path.relative_to(outdir).as_posix())

    assert key_of(local.thumbnail) == JOB.thumbnail
    assert key_of(local.preview) == JOB.preview
    assert key_of(local.video("medium")) == JOB.rendition("medium")
    assert key_of(local.hls) + "/" == JOB.hls_prefix
    assert key_of(local.variant("low")).startswith(JOB.hls_prefix)


@pytest.mark.parametrize("job_id", [1, 42, 2**63 - 1])
def test_every_output_key_reads_back_as_its_job(job_id: int) -> None:
    layout = OutputLayout(job_id)
    keys = [layout.thumbnail, layout.preview, layout.rendition("low"), layout.master_playlist]
    assert [OutputLayout.of_key(key) for key in keys] == [layout] * len(keys)


@pytest.mark.parametrize(
    "key",
    [
        "videos/output/9223372036854775808/low.mp4",  # past a bigint
        "videos/output/012/low.mp4",
        "videos/output/0/low.mp4",
        "videos/output/-1/low.mp4",
        "videos/output/+1/low.mp4",
        "videos/output/latest/low.mp4",
        "videos/output/12",
        "videos/output/12/",
        "videos/outputs/12/low.mp4",
        "xvideos/output/12/low.mp4",
        "gallery/alice/1700000000000-clip.mp4",
        "",
    ],
)
def test_a_key_no_job_writes_has_no_job(key: str) -> None:
    assert OutputLayout.of_key(key) is None


@pytest.mark.parametrize("name", [THUMBNAIL, PREVIEW, "hls/master.m3u8"])
def test_key_parts_put_around_a_job_id_give_its_key(name: str) -> None:
    before, after = key_parts(name)
    assert before + str(JOB.job_id) + after == JOB.key(name)


async def _ended_job(pool: asyncpg.Pool) -> int:
    job = await jobs_db.insert_job(
        pool,
        user_id="alice",
        input_source="gallery/alice/1700000000000-clip.mp4",
        qualities=["low"],
        gallery_video_id=None,
    )
    await pool.execute(
        "UPDATE jobs SET status = $2, completed_at = now() - interval '90 days' WHERE id = $1",
        job.id,
        JobStatus.COMPLETED.value,
    )
    return job.id


async def _video_showing(pool: asyncpg.Pool, thumbnail: str | None, preview: str | None) -> None:
    await pool.execute(
        """
        INSERT INTO gallery_videos (user_id, title, s3_key, thumbnail_key, preview_key)
        VALUES ('alice', 'clip', 'gallery/alice/' || gen_random_uuid() || '-clip.mp4', $1, $2)
        """,
        thumbnail,
        preview,
    )


async def test_cleanup_sql_finds_a_jobs_thumbnail_and_preview_by_the_layouts_keys(
    db_pool: asyncpg.Pool,
) -> None:
    thumbnail_shown, preview_shown, other_shown, unused = [
        await _ended_job(db_pool) for _ in range(4)
    ]
    await _video_showing(db_pool, OutputLayout(thumbnail_shown).thumbnail, None)
    await _video_showing(db_pool, None, OutputLayout(preview_shown).preview)
    # Another output of a job, in the thumbnail's place, is not its thumbnail.
    await _video_showing(db_pool, OutputLayout(other_shown).rendition("low"), None)
    cutoff = await db_pool.fetchval("SELECT now() - interval '30 days'")

    assert sorted(await jobs_db.delete_ended_before(db_pool, cutoff, 100)) == [other_shown, unused]
