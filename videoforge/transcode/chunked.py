"""A long source transcoded chunk by chunk, then stitched: the same outputs as one pass.

For now one process runs every step in turn: the audio once, each chunk's video, the stills, the
stitch and the HLS package. Each chunk is its own call (`encode_chunk`), so a queue task can run
one later. The work files live under `CHUNKS_DIR` in the output directory, which the worker never
uploads (it uploads the outputs and the hls/ directory), and are removed once the outputs exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
from videoforge.transcode.command import GIF_SECONDS, Layout, build_hls_command
from videoforge.transcode.ladder import Rung, plan_ladder
from videoforge.transcode.master_playlist import write_master_playlist
from videoforge.transcode.outputs import (
    TranscodeResult,
    ignore_progress,
    make_dirs,
    outputs_of,
    remaining,
    require_files,
    transcode_timeout,
)
from videoforge.transcode.probe import MediaInfo, check_limits, probe
from videoforge.transcode.progress import ProgressCallback, ProgressThrottle
from videoforge.transcode.runner import run_ffmpeg

CHUNKS_DIR = "chunks"
# Shares of the progress range. The chunks' video is nearly all the work (the audio and the
# stills run beside it), and the stitch and the HLS package only copy.
CHUNKS_SHARE = 0.95
STITCH_SHARE = 0.025  # the HLS package takes the rest


class Steps:
    """Maps each step's own 0..1 onto its share of the job's progress, in order."""

    def __init__(self, throttle: ProgressThrottle) -> None:
        self._throttle = throttle
        self._done = 0.0

    def next(self, share: float | None = None) -> ProgressCallback:
        """The callback of the step taking the next `share` of the range (None: what is left)."""
        start = self._done
        width = 1.0 - start if share is None else share
        self._done = start + width

        async def report(fraction: float) -> None:
            await self._throttle.report(start + width * fraction)

        return report


@dataclass(frozen=True)
class ChunkedRun:
    """What every step of one chunked transcode reads, and the deadline they share."""

    binaries: Binaries
    source: Path
    outdir: Path
    info: MediaInfo
    ladder: list[Rung]
    work: ChunkLayout
    threads: int | None
    deadline: float  # on the event loop's clock

    def remaining(self) -> float:
        """Seconds left for the next ffmpeg run; TranscodeTimedOut once none are."""
        return remaining(self.deadline, asyncio.get_running_loop())

    async def ffmpeg(self, argv: list[str], duration: float, on_progress: ProgressCallback) -> None:
        await run_ffmpeg(
            argv,
            duration=duration,
            timeout=self.remaining(),
            on_progress=on_progress,
            min_interval=0,
        )


async def transcode_chunked(
    binaries: Binaries,
    config: TranscodeConfig,
    source: Path,
    outdir: Path,
    qualities: Sequence[str],
    on_progress: ProgressCallback | None = None,
    *,
    threads: int | None = None,
    info: MediaInfo | None = None,
) -> TranscodeResult:
    """`pipeline.transcode`'s contract, run as chunks of `config.chunk_seconds`.

    Raises InvalidMedia or TranscodeFailed (TranscodeTimedOut past the same time limit as one
    pass, all steps together); a cancellation kills ffmpeg.
    """
    if info is None:
        info = await probe(binaries.ffprobe, source)
        check_limits(info, config)
    ladder = plan_ladder(info, qualities)
    chunks = plan_chunks(info.duration, config.chunk_seconds)
    layout, work = Layout(outdir), ChunkLayout(outdir / CHUNKS_DIR)
    throttle = ProgressThrottle(on_progress or ignore_progress)
    steps = Steps(throttle)
    deadline = asyncio.get_running_loop().time() + transcode_timeout(info, config)
    run = ChunkedRun(binaries, source, outdir, info, ladder, work, threads, deadline)
    make_dirs(layout, ladder)
    # A new attempt starts over: nothing from an earlier one may be stitched in.
    shutil.rmtree(work.root, ignore_errors=True)
    work.root.mkdir(parents=True)
    # The audio and the stills run beside the chunks, as they run beside the video in one pass:
    # AAC encodes on one core and x264 does not keep two busy all the time.
    beside = asyncio.create_task(encode_audio_and_stills(run))
    try:
        await encode_chunks(run, chunks, steps)
        await beside
    finally:
        await _cancel(beside)
    await stitch(run, chunks, steps.next(STITCH_SHARE))
    require_files([layout.video(r.quality) for r in ladder] + [layout.thumbnail, layout.preview])
    package = build_hls_command(binaries.ffmpeg, outdir, ladder, has_audio=info.has_audio)
    await run.ffmpeg(package, info.duration, steps.next())
    master = write_master_playlist(layout.hls, ladder, has_audio=info.has_audio)
    shutil.rmtree(work.root, ignore_errors=True)
    await throttle.report(1.0, final=True)
    return TranscodeResult(info, ladder, outputs_of(layout, info, ladder, master))


async def encode_chunk(
    binaries: Binaries,
    source: Path,
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


async def encode_chunks(run: ChunkedRun, chunks: Sequence[Chunk], steps: Steps) -> None:
    """Every chunk in turn, each taking the share of the progress its duration is."""
    for chunk in chunks:
        await encode_chunk(
            run.binaries,
            run.source,
            run.info,
            run.ladder,
            chunk,
            run.work,
            timeout=run.remaining(),
            on_progress=steps.next(CHUNKS_SHARE * chunk.duration / run.info.duration),
            threads=run.threads,
        )


async def encode_audio_and_stills(run: ChunkedRun) -> None:
    """The whole file's audio once (none for a silent source), then the thumbnail and GIF."""
    if run.info.has_audio:
        argv = build_audio_command(run.binaries.ffmpeg, run.source, run.work, threads=run.threads)
        await run.ffmpeg(argv, run.info.duration, ignore_progress)
        require_files([run.work.audio])
    stills = build_stills_command(
        run.binaries.ffmpeg, run.source, run.outdir, run.info, run.ladder, threads=run.threads
    )
    await run.ffmpeg(stills, GIF_SECONDS, ignore_progress)


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
    await run.ffmpeg(argv, run.info.duration, on_progress)
