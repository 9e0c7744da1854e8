"""A long source encoded chunk by chunk, then stitched: the same MP4s and stills as one pass
(`pipeline.transcode` packages HLS from them either way).

The audio (once, for the whole file) and the stills run here, beside the chunks; who encodes the
chunks is a `ChunkRunner`'s business: `LocalChunks` encodes each in turn in this process, the
worker's runner spreads them over the queue (`videoforge.jobs.chunk_tasks`). Each chunk is one
call of `encode_chunk`. The work files live under `CHUNKS_DIR` in the output directory, which the
worker never uploads (it uploads the outputs and the hls/ directory), and are removed once the
MP4s exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from videoforge.config import TranscodeConfig
from videoforge.transcode.binaries import Binaries
from videoforge.transcode.chunks import (
    Chunk,
    ChunkLayout,
    build_audio_command,
    build_chunk_command,
    build_stills_command,
    build_stitch_command,
    concat_list,
    plan_chunks,
)
from videoforge.transcode.command import GIF_SECONDS
from videoforge.transcode.ladder import Rung
from videoforge.transcode.outputs import TimeLimit, ignore_progress, require_files
from videoforge.transcode.probe import MediaInfo
from videoforge.transcode.progress import ProgressCallback, ProgressSteps, StepCallback
from videoforge.transcode.runner import run_ffmpeg
from videoforge.transcode.source import Source

CHUNKS_DIR = "chunks"
# The chunks' share of the encode's progress: nearly all the work (the audio and the stills run
# beside them); the stitch only copies.
CHUNKS_SHARE = 0.97


@dataclass(frozen=True)
class ChunkedRun:
    """What every step of one chunked encode reads, and the time limit they share."""

    binaries: Binaries
    source: Path
    outdir: Path
    info: MediaInfo
    ladder: list[Rung]
    work: ChunkLayout
    threads: int | None
    limit: TimeLimit


class ChunkRunner(Protocol):
    """Gets every chunk's video of every rung into `run.work`, wherever it is encoded."""

    async def encode_all(
        self, run: ChunkedRun, chunks: Sequence[Chunk], on_progress: StepCallback
    ) -> None:
        """All of `chunks`, reporting progress from 0 to 1 over them."""


class LocalChunks:
    """Every chunk in turn, in this process, each taking the share of the progress its
    duration is."""

    async def encode_all(
        self, run: ChunkedRun, chunks: Sequence[Chunk], on_progress: StepCallback
    ) -> None:
        steps = ProgressSteps(on_progress)
        for chunk in chunks:
            await encode_chunk(
                run.binaries,
                run.source,
                run.info,
                run.ladder,
                chunk,
                run.work,
                timeout=run.limit.remaining(),
                on_progress=steps.next(chunk.duration / run.info.duration),
                threads=run.threads,
            )


async def encode_in_chunks(
    binaries: Binaries,
    config: TranscodeConfig,
    source: Path,
    outdir: Path,
    info: MediaInfo,
    ladder: list[Rung],
    limit: TimeLimit,
    on_progress: StepCallback,
    *,
    threads: int | None = None,
    runner: ChunkRunner | None = None,
) -> None:
    """The renditions, thumbnail and GIF that one pass's encode makes, from chunks of
    `config.chunk_seconds` (encoded by `runner`, here by default); progress from 0 to 1 over
    the chunks and the stitch."""
    chunks = plan_chunks(info.duration, config.chunk_seconds)
    work = ChunkLayout(outdir / CHUNKS_DIR)
    run = ChunkedRun(binaries, source, outdir, info, ladder, work, threads, limit)
    steps = ProgressSteps(on_progress)
    # A new attempt starts over: nothing from an earlier one may be stitched in.
    shutil.rmtree(work.root, ignore_errors=True)
    work.root.mkdir(parents=True)
    # The audio and the stills run beside the chunks, as they run beside the video in one pass:
    # AAC encodes on one core and x264 does not keep two busy all the time.
    beside = asyncio.create_task(encode_audio_and_stills(run))
    try:
        await (runner or LocalChunks()).encode_all(run, chunks, steps.next(CHUNKS_SHARE))
        await beside
    finally:
        await _cancel(beside)
    await stitch(run, chunks, steps.next())
    shutil.rmtree(work.root, ignore_errors=True)


async def encode_chunk(
    binaries: Binaries,
    source: Source,
    info: MediaInfo,
    ladder: Sequence[Rung],
    chunk: Chunk,
    work: ChunkLayout,
    *,
    timeout: float,
    on_progress: ProgressCallback | None = None,
    threads: int | None = None,
) -> list[Path]:
    """One chunk's video for every rung, in its own directory under `work`: one unit of work."""
    work.chunk_dir(chunk).mkdir(parents=True, exist_ok=True)
    argv = build_chunk_command(binaries.ffmpeg, source, info, ladder, chunk, work, threads=threads)
    await run_ffmpeg(
        argv, duration=chunk.duration, timeout=timeout, on_progress=on_progress, min_interval=0
    )
    files = [work.chunk_video(chunk, rung.quality) for rung in ladder]
    require_files(files)
    return files


async def encode_audio_and_stills(run: ChunkedRun) -> None:
    """The whole file's audio once (none for a silent source), then the thumbnail and GIF."""
    if run.info.has_audio:
        argv = build_audio_command(run.binaries.ffmpeg, run.source, run.work, threads=run.threads)
        await run.limit.run(argv, run.info.duration, ignore_progress)
        require_files([run.work.audio])
    stills = build_stills_command(
        run.binaries.ffmpeg, run.source, run.outdir, run.info, run.ladder, threads=run.threads
    )
    await run.limit.run(stills, GIF_SECONDS, ignore_progress)


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel `task` if it still runs and wait until it (and its ffmpeg) is gone."""
    if task.done():
        if not task.cancelled():
            task.exception()  # seen: the failure that ended the run is the one raised
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def stitch(run: ChunkedRun, chunks: Sequence[Chunk], on_progress: ProgressCallback) -> None:
    """Every rung's MP4 from its chunks and the audio, by stream copy."""
    for rung in run.ladder:
        run.work.concat_list(rung.quality).write_text(concat_list(chunks, rung.quality))
    argv = build_stitch_command(
        run.binaries.ffmpeg, run.outdir, run.work, run.ladder, has_audio=run.info.has_audio
    )
    await run.limit.run(argv, run.info.duration, on_progress)
