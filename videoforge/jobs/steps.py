"""What a worker does with one claimed job: download, probe, transcode, upload, record.

Each step says what failed in the words a user reads in `errorText`; whether trying again
could help (`retryable`) is decided for all of them by one table (`jobs.failures`): a bad input
fails at once, a storage or database hiccup is retried. Storage transfers first ride out a short
outage in place (`jobs.transfers`). Once the transcode has finished, a marker in the work dir
records the outputs, so that an attempt whose upload failed can leave them to the next attempt
on the same worker, which then only uploads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable
from pathlib import Path

import asyncpg

from videoforge.db import assets as assets_db
from videoforge.db import jobs as jobs_db
from videoforge.db import videos as videos_db
from videoforge.db.assets import NewAsset
from videoforge.db.jobs import Job
from videoforge.errors import ObjectNotFound, StorageError
from videoforge.jobs.chunk_tasks import delete_chunk_files
from videoforge.jobs.chunked_job import QueuedChunks
from videoforge.jobs.context import LeaseLost, StepContext, failing
from videoforge.jobs.transfers import Deadline
from videoforge.model import JobStatus
from videoforge.storage import ObjectChanged, ObjectInfo, content_type_for
from videoforge.storage.layout import OutputLayout
from videoforge.support.concurrency import gather_bounded
from videoforge.transcode.pipeline import OutputFile, TranscodeResult, transcode
from videoforge.transcode.probe import InvalidMedia, MediaInfo, check_limits, probe
from videoforge.transcode.runner import TranscodeFailed

log = logging.getLogger(__name__)

# The job's 0-100 progress: download up to 10, ffmpeg 10-90, upload 90-99, 100 when COMPLETED.
PROCESSING_START, UPLOADING_START = 10, 90
UPLOAD_CONCURRENCY = 4
SOURCE_FILE, OUTPUT_DIR = "input", "out"
FINISHED_FILE = "finished.json"  # written only once the transcode has finished


async def run_job(ctx: StepContext, job: Job, workdir: Path) -> None:
    """Every step of one job, ending COMPLETED (or raising JobFailed / LeaseLost). A work dir
    with the finished outputs of an earlier attempt of this job goes straight to the upload."""
    outputs = await asyncio.to_thread(finished_outputs, workdir, job)
    if outputs is None:
        outputs = await _produce(ctx, job, workdir)
    else:
        log.info("job %d: uploading the outputs its previous attempt made", job.id)
    await _set(ctx, job, status=JobStatus.UPLOADING, progress=UPLOADING_START)
    new_assets = await _upload(ctx, job, workdir / OUTPUT_DIR, outputs)
    await _complete(ctx, job, new_assets)
    await delete_chunk_files(ctx, job.id)


async def _produce(ctx: StepContext, job: Job, workdir: Path) -> list[OutputFile]:
    source = workdir / SOURCE_FILE
    await _download(ctx, job, source)
    info = await _probe(ctx, job, source)
    await _set(ctx, job, status=JobStatus.PROCESSING, progress=PROCESSING_START)
    result = await _transcode(ctx, job, source, workdir / OUTPUT_DIR, info)
    await asyncio.to_thread(record_finished, workdir, job, result.outputs)
    return result.outputs


def record_finished(workdir: Path, job: Job, outputs: list[OutputFile]) -> None:
    """Record the finished outputs and what they were made from, replacing the file whole."""
    record = {
        "job": job.id,
        "input_source": job.input_source,
        "qualities": job.qualities,
        "outputs": [
            {**dataclasses.asdict(o), "path": o.path.relative_to(workdir).as_posix()}
            for o in outputs
        ],
    }
    partial = workdir / f"{FINISHED_FILE}.partial"
    partial.write_text(json.dumps(record))
    partial.replace(workdir / FINISHED_FILE)


def finished_outputs(workdir: Path, job: Job) -> list[OutputFile] | None:
    """The outputs an earlier attempt finished in `workdir`, if they were made for this job's
    source and qualities and are all still there; else None."""
    try:
        record = json.loads((workdir / FINISHED_FILE).read_text())
        made_for = (record["job"], record["input_source"], record["qualities"])
        outputs = [OutputFile(**{**o, "path": workdir / o["path"]}) for o in record["outputs"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if made_for != (job.id, job.input_source, job.qualities) or not outputs:
        return None
    root = workdir.resolve()
    if not all(o.path.resolve().is_relative_to(root) and o.path.is_file() for o in outputs):
        return None
    return outputs


def keep_for_retry(workdir: Path, job: Job) -> bool:
    """Whether `workdir` holds finished outputs a retry of `job` can upload; if so, the source
    (which a retry no longer needs) is deleted to halve what is kept."""
    if finished_outputs(workdir, job) is None:
        return False
    (workdir / SOURCE_FILE).unlink(missing_ok=True)
    return True


async def _set(ctx: StepContext, job: Job, **fields: object) -> None:
    if not await jobs_db.update_running(ctx.pool, job.id, ctx.owner, **fields):
        raise LeaseLost()
    if "status" in fields:
        log.info("job %d: %s", job.id, fields["status"])


async def _download(ctx: StepContext, job: Job, dest: Path) -> None:
    reported = (ObjectNotFound, ObjectChanged, StorageError, OSError)
    with failing("Failed to download source video", *reported):
        # A confirmed original must still be the object that was confirmed.
        version = await ctx.gallery.confirmed_version(job.input_source)

        def download() -> Awaitable[None]:
            return ctx.storage.get_file(job.input_source, dest, version)

        await Deadline(ctx.transfer_retry).run(download, f"job {job.id}: download")
    size = (await asyncio.to_thread(dest.stat)).st_size
    log.info("job %d: downloaded %s (%d bytes)", job.id, job.input_source, size)


async def _probe(ctx: StepContext, job: Job, source: Path) -> MediaInfo:
    with failing("Metadata extraction failed", InvalidMedia):
        info = await probe(ctx.binaries.ffprobe, source)
        check_limits(info, ctx.config.transcode)
    metadata = {
        "duration": round(info.duration, 2),
        "resolution": f"{info.width}x{info.height}",
        "video_codec": info.video_codec,
        "audio_codec": info.audio_codec,
    }
    await _set(ctx, job, **metadata)
    await _update_video(ctx, job, width=info.width, height=info.height, **metadata)
    log.info(
        "job %d: metadata %sx%s, %.1fs, %s/%s",
        job.id,
        info.width,
        info.height,
        info.duration,
        info.video_codec,
        info.audio_codec,
    )
    return info


async def _transcode(
    ctx: StepContext, job: Job, source: Path, outdir: Path, info: MediaInfo
) -> TranscodeResult:
    span = UPLOADING_START - PROCESSING_START

    def on_progress(fraction: float) -> None:
        ctx.report_progress(PROCESSING_START + int(span * min(max(fraction, 0.0), 1.0)))

    await asyncio.to_thread(outdir.mkdir, parents=True, exist_ok=True)
    started = time.monotonic()
    with failing("Invalid input", InvalidMedia), failing("Transcoding failed", TranscodeFailed):
        result = await transcode(
            ctx.binaries,
            ctx.config.transcode,
            source,
            outdir,
            job.qualities,
            on_progress,
            info=info,
            chunk_runner=None if ctx.queue is None else QueuedChunks(ctx, job, ctx.queue),
        )
    if ctx.metrics is not None:
        ctx.metrics.transcoded(info.duration, time.monotonic() - started)
    return result


async def _upload(
    ctx: StepContext, job: Job, outdir: Path, outputs: list[OutputFile]
) -> list[NewAsset]:
    layout = OutputLayout(job.id)
    files = [(path, layout.key(path.relative_to(outdir).as_posix())) for path in _files(outputs)]
    deadline = Deadline(ctx.transfer_retry)  # one budget for all the files

    async def put(file: tuple[Path, str]) -> None:
        path, key = file

        def upload() -> Awaitable[ObjectInfo]:
            return ctx.storage.put_file(key, path, content_type_for(key))

        await deadline.run(upload, f"job {job.id}: upload of {key}")

    with failing("Failed to upload outputs", StorageError, OSError):
        await gather_bounded(files, put, UPLOAD_CONCURRENCY)
    log.info("job %d: uploaded %d files under %s", job.id, len(files), layout.prefix)
    return [_asset(output, layout, outdir) for output in outputs]


def _files(outputs: list[OutputFile]) -> list[Path]:
    """Every file to upload: each output, and for HLS its whole directory."""
    files: list[Path] = []
    for output in outputs:
        if output.kind == "hls":
            files += sorted(p for p in output.path.parent.rglob("*") if p.is_file())
        else:
            files.append(output.path)
    return files


def _asset(output: OutputFile, layout: OutputLayout, root: Path) -> NewAsset:
    if output.kind == "hls":
        size = sum(p.stat().st_size for p in output.path.parent.rglob("*") if p.is_file())
        size += output.stored_bytes
    else:
        size = output.path.stat().st_size
    return NewAsset(
        asset_type=output.kind,
        format=output.format,
        quality=output.quality,
        s3_key=layout.key(output.path.relative_to(root).as_posix()),
        file_size=size,
        width=output.width,
        height=output.height,
        bitrate=output.bitrate,
    )


async def _complete(ctx: StepContext, job: Job, new_assets: list[NewAsset]) -> None:
    """Assets, the job's COMPLETED and the video's `ready`, all or nothing."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        finished = await jobs_db.finish(conn, job.id, ctx.owner, JobStatus.COMPLETED)
        if finished is None:
            raise LeaseLost()
        await assets_db.replace_assets(conn, job.id, new_assets)
        # Ready on this job, with its thumbnail and preview from the assets just written.
        video_ids = await videos_db.update_videos_of_jobs(conn, [job.id])
        # Also before the commit: the commit announces COMPLETED to event streams, and a page
        # opened on that news must not find the cached `processing` record still there.
        await _invalidate(ctx, video_ids)
    await _invalidate(ctx, video_ids)
    log.info("job %d: COMPLETED", job.id)


async def settle_video(ctx: StepContext, job: Job) -> None:
    """Give the job's gallery video the state its jobs say, now that this one changed."""
    await _update_video(ctx, job)


async def _update_video(ctx: StepContext, job: Job, **changes: object) -> None:
    if job.gallery_video_id is None:
        return
    with failing("Database error", asyncpg.PostgresError):
        video_ids = await videos_db.update_videos_of_jobs(ctx.pool, [job.id], changes)
    await _invalidate(ctx, video_ids)


async def _invalidate(ctx: StepContext, video_ids: list[int]) -> None:
    for video_id in video_ids:
        await ctx.gallery.invalidate(video_id)
