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
from videoforge.storage.layout import MASTER_PLAYLIST
from videoforge.transcode.binaries import Binaries
from videoforge.transcode.capabilities import require_tone_map
from videoforge.transcode.chunk_hls import (
    AUDIO_DIR,
    CHUNK_PLAYLIST,
    ChunkHls,
    ChunkVariant,
    build_audio_hls_command,
    build_chunk_hls_command,
    chunk_offset,
    describe_variant,
    first_packet,
    hls_playlists,
    stored_files,
)
from videoforge.transcode.chunks import (
    Chunk,
    ChunkLayout,
    build_audio_command,
    build_chunk_command,
    build_stills_command,
    build_stitch_command,
    chunk_frames,
    concat_list,
    plan_chunks,
)
from videoforge.transcode.command import GIF_SECONDS, Layout
from videoforge.transcode.ladder import Rung
from videoforge.transcode.outputs import TimeLimit, ignore_progress, require_files
from videoforge.transcode.probe import MediaInfo
from videoforge.transcode.progress import ProgressCallback, ProgressSteps, StepCallback
from videoforge.transcode.runner import TranscodeFailed, run_ffmpeg
from videoforge.transcode.source import Source
from videoforge.transcode.storyboard import chunk_has_spare, storyboard_of

CHUNKS_DIR = "chunks"
# The chunks' share of the encode's progress: nearly all the work (the audio and the stills run
# beside them); the stitch only copies.
CHUNKS_SHARE = 0.97
HLS_TIMEOUT_S = 120.0  # a stream copy of one chunk: seconds at most


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


@dataclass(frozen=True)
class EncodedChunk:
    """One chunk's outputs: its video of each rung (for the stitch), their HLS, and the
    storyboard's frames of its range (by their index in the whole video)."""

    chunk: Chunk
    videos: list[Path]
    hls: ChunkHls
    frames: dict[int, Path]


class ChunkRunner(Protocol):
    """Gets every chunk's video of every rung into `run.work`, wherever it is encoded, and
    says where each chunk's HLS segments are."""

    # Whether the chunks' HLS segments are in storage already (else they are in `run.work`).
    segments_stored: bool

    async def encode_all(
        self, run: ChunkedRun, chunks: Sequence[Chunk], on_progress: StepCallback
    ) -> list[ChunkHls]:
        """All of `chunks` (their HLS in the same order), reporting progress from 0 to 1."""


class LocalChunks:
    """Every chunk in turn, in this process, each taking the share of the progress its
    duration is."""

    segments_stored = False

    async def encode_all(
        self, run: ChunkedRun, chunks: Sequence[Chunk], on_progress: StepCallback
    ) -> list[ChunkHls]:
        steps = ProgressSteps(on_progress)
        encoded = []
        for chunk in chunks:
            encoded.append(
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
            )
        return [done.hls for done in encoded]


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
) -> ChunkedOutputs:
    """The renditions, thumbnail and GIF that one pass's encode makes, and the HLS package,
    from chunks of `config.chunk_seconds` (encoded by `runner`, here by default); progress from
    0 to 1 over the chunks and the stitch."""
    chunks = plan_chunks(info.duration, config.chunk_seconds)
    work = ChunkLayout(outdir / CHUNKS_DIR)
    run = ChunkedRun(binaries, source, outdir, info, ladder, work, threads, limit)
    steps = ProgressSteps(on_progress)
    # A new attempt starts over: nothing from an earlier one may be stitched in.
    shutil.rmtree(work.root, ignore_errors=True)
    work.root.mkdir(parents=True)
    # The audio and the stills run beside the chunks, as they run beside the video in one pass:
    # AAC encodes on one core and x264 does not keep two busy all the time.
    runner = runner or LocalChunks()
    beside = asyncio.create_task(encode_audio_and_stills(run))
    try:
        variants = await runner.encode_all(run, chunks, steps.next(CHUNKS_SHARE))
        await beside
    finally:
        await _cancel(beside)
    await stitch(run, chunks, steps.next())
    gather_frames(run, chunks)
    if not runner.segments_stored:
        move_segments(run, chunks, variants)
    outputs = write_hls(run, variants, stored=runner.segments_stored)
    shutil.rmtree(work.root, ignore_errors=True)
    return outputs


@dataclass(frozen=True)
class ChunkedOutputs:
    master: Path
    stored_bytes: int  # of the HLS package, already in storage rather than under `outdir`


def audio_hls_dir(run: ChunkedRun) -> Path:
    """The audio rendition's segments; it appears whole, once they all exist."""
    return Layout(run.outdir).hls / AUDIO_DIR


def audio_variant(run: ChunkedRun) -> ChunkVariant | None:
    """The audio rendition once it is packaged; None before that, or for a silent source."""
    directory = audio_hls_dir(run)
    if not run.info.has_audio or not (directory / CHUNK_PLAYLIST).is_file():
        return None
    return describe_variant(directory)


def move_segments(run: ChunkedRun, chunks: Sequence[Chunk], variants: Sequence[ChunkHls]) -> None:
    """The init and media segments the playlists name, from the chunks' work dirs into the
    HLS package."""
    hls = Layout(run.outdir).hls
    for rung in run.ladder:
        found = {}
        for chunk, chunk_hls in zip(chunks, variants, strict=True):
            variant = chunk_hls[rung.quality]
            for name in [variant.init, *(s.name for s in variant.segments)]:
                found[name] = run.work.chunk_hls_dir(chunk, rung.quality) / name
        for name in stored_files([chunk_hls[rung.quality] for chunk_hls in variants]):
            found[name].replace(hls / rung.quality / name)


def write_hls(run: ChunkedRun, variants: Sequence[ChunkHls], *, stored: bool) -> ChunkedOutputs:
    """The finished package's playlists (VOD), beside the audio rendition's segments."""
    audio = audio_variant(run)
    if run.info.has_audio and audio is None:
        raise TranscodeFailed("the audio rendition was not packaged")
    hls = Layout(run.outdir).hls
    for relative, text in hls_playlists(run.ladder, variants, audio, ended=True).items():
        (hls / relative).write_text(text)
    (audio_hls_dir(run) / CHUNK_PLAYLIST).unlink(missing_ok=True)
    stored_bytes = sum(s.size for v in variants for c in v.values() for s in c.segments)
    return ChunkedOutputs(hls / MASTER_PLAYLIST, stored_bytes if stored else 0)


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
) -> EncodedChunk:
    """One chunk's video for every rung, and its HLS, in its own directory under `work`: one
    unit of work."""
    require_tone_map(info, binaries.capabilities)
    # An earlier attempt's frames must not be taken for this one's.
    shutil.rmtree(work.chunk_frames_dir(chunk), ignore_errors=True)
    work.chunk_frames_dir(chunk).mkdir(parents=True)
    argv = build_chunk_command(binaries.ffmpeg, source, info, ladder, chunk, work, threads=threads)
    await run_ffmpeg(
        argv, duration=chunk.duration, timeout=timeout, on_progress=on_progress, min_interval=0
    )
    files = [work.chunk_video(chunk, rung.quality) for rung in ladder]
    require_files(files)
    hls = {}
    for rung, video in zip(ladder, files, strict=True):
        hls[rung.quality] = await package_chunk(binaries, video, work, chunk, rung)
    return EncodedChunk(chunk, files, hls, own_frames(info, chunk, work))


def own_frames(info: MediaInfo, chunk: Chunk, work: ChunkLayout) -> dict[int, Path]:
    """The storyboard's frames the chunk wrote in its range, its spare deleted (a seam may
    have missed one: the tiling fills it in)."""
    plan = storyboard_of(info)
    if plan is None:
        return {}
    owned = chunk_frames(plan, chunk)
    if chunk_has_spare(plan, chunk.start, owned, info.fps):
        work.chunk_frame(chunk, owned.start - 1).unlink(missing_ok=True)
    frames = {index: work.chunk_frame(chunk, index) for index in owned}
    return {index: path for index, path in frames.items() if path.is_file()}


def gather_frames(run: ChunkedRun, chunks: Sequence[Chunk]) -> None:
    """Every chunk's storyboard frames into the one directory the tiling reads."""
    frames = Layout(run.outdir).frames
    for chunk in chunks:
        for path in run.work.chunk_frames_dir(chunk).glob("frame-*.jpg"):
            path.replace(frames / path.name)


async def package_chunk(
    binaries: Binaries, video: Path, work: ChunkLayout, chunk: Chunk, rung: Rung
) -> ChunkVariant:
    """One chunk's video of one rung as HLS segments at their place in the whole."""
    outdir = work.chunk_hls_dir(chunk, rung.quality)
    outdir.mkdir(parents=True, exist_ok=True)
    _, first_dts = await first_packet(binaries.ffprobe, video)
    offset = chunk_offset(chunk.start, rung.fps, first_dts)
    argv = build_chunk_hls_command(binaries.ffmpeg, video, outdir, chunk.name, chunk.start, offset)
    await run_ffmpeg(argv, duration=chunk.duration, timeout=HLS_TIMEOUT_S, min_interval=0)
    return describe_variant(outdir)


async def encode_audio_and_stills(run: ChunkedRun) -> None:
    """The whole file's audio once (none for a silent source), then the thumbnail and GIF."""
    if run.info.has_audio:
        argv = build_audio_command(run.binaries.ffmpeg, run.source, run.work, threads=run.threads)
        await run.limit.run(argv, run.info.duration, ignore_progress)
        require_files([run.work.audio])
        await package_audio(run)
    stills = build_stills_command(
        run.binaries.ffmpeg,
        run.source,
        run.outdir,
        run.info,
        run.ladder,
        threads=run.threads,
        webp=run.binaries.capabilities.webp,
    )
    await run.limit.run(stills, GIF_SECONDS, ignore_progress)


async def package_audio(run: ChunkedRun) -> None:
    """The audio rendition's segments, made aside and then moved in whole: whoever sees the
    directory sees all of it."""
    aside = run.work.root / AUDIO_DIR
    aside.mkdir()
    argv = build_audio_hls_command(run.binaries.ffmpeg, run.work.audio, aside)
    await run.limit.run(argv, run.info.duration, ignore_progress)
    aside.replace(audio_hls_dir(run))


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
