"""Split-and-stitch (pure): the chunk plan and the ffmpeg argv lists of a chunked transcode.

A chunk is a self-contained unit of work: the source, its time range and the ladder in, one
video-only MP4 per rung in the chunk's own directory out. The audio is encoded once for the whole
file (AAC per chunk would add priming samples at every seam: clicks and drift), the thumbnail and
the GIF come from the source at their times, each chunk writes the storyboard's frames whose times
fall in its range (named by their index in the whole video, tiled once all chunks are done), and
the stitch joins the chunks' video and the audio
by stream copy into the faststart MP4 renditions, which HLS is then packaged from as in one pass.
Every chunk starts at a whole multiple of `chunk_seconds`, itself a whole number of HLS segments,
and keyframes are forced at the same instants as in one pass, so every seam is a segment bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from videoforge.storage.layout import (
    HLS_DIR,
    STORYBOARD_DIR,
    chunk_name,
    rendition_file,
    storyboard_frame_file,
)
from videoforge.transcode.command import (
    AAC_ARGS,
    GIF_SECONDS,
    NO_METADATA,
    RENDITION_FORMATS,
    Layout,
    file_arg,
    frames_output_args,
    gif_filters,
    gif_start,
    global_args,
    rendition_args,
    rung_filters,
    seconds_arg,
    source_filters,
    stills_output_args,
    thread_args,
    thumbnail_time,
)
from videoforge.transcode.ladder import Rung
from videoforge.transcode.probe import MediaInfo, input_args
from videoforge.transcode.source import Source
from videoforge.transcode.storyboard import (
    StoryboardPlan,
    chunk_first_number,
    chunk_frames_filter,
    storyboard_of,
)

# A last chunk shorter than this share of a chunk joins the one before it: an ffmpeg start and an
# encoder warm-up for a few seconds of video cost more than they spread.
MIN_LAST_CHUNK_SHARE = 0.25
# The stitch reads our own concat lists and the chunks' MP4s we wrote, nothing else.
STITCH_FORMATS = f"concat,{RENDITION_FORMATS}"
AUDIO_FILE = "audio.m4a"


@dataclass(frozen=True)
class Chunk:
    """One time range of the source: `[start, start + duration)`, or to its end for the last."""

    index: int
    start: float
    duration: float
    to_end: bool  # the last chunk reads to the source's end, whatever the probe said

    @property
    def name(self) -> str:
        # Digits only: the concat demuxer's safe mode accepts it as a relative path.
        return chunk_name(self.index)


def chunking_applies(duration: float, chunk_seconds: int) -> bool:
    """Whether a source of `duration` seconds is chunked (longer than two chunks)."""
    return chunk_seconds > 0 and duration > 2 * chunk_seconds


def plan_chunks(duration: float, chunk_seconds: int) -> list[Chunk]:
    """Chunks of `chunk_seconds` from the start; the last one takes the rest, never a sliver."""
    if chunk_seconds <= 0 or not duration > 0:
        raise ValueError("chunk_seconds and duration must be positive")
    count = max(1, math.ceil(duration / chunk_seconds))
    if count > 1 and duration - (count - 1) * chunk_seconds < chunk_seconds * MIN_LAST_CHUNK_SHARE:
        count -= 1
    last_start = (count - 1) * chunk_seconds
    chunks = [Chunk(i, float(i * chunk_seconds), float(chunk_seconds), False) for i in range(count)]
    chunks[-1] = Chunk(count - 1, float(last_start), duration - last_start, True)
    return chunks


@dataclass(frozen=True)
class ChunkLayout:
    """Where a chunked transcode's work files go, under `root` (never uploaded)."""

    root: Path

    def chunk_dir(self, chunk: Chunk) -> Path:
        return self.root / chunk.name

    def chunk_video(self, chunk: Chunk, quality: str) -> Path:
        return self.chunk_dir(chunk) / rendition_file(quality)

    def chunk_hls_dir(self, chunk: Chunk, quality: str) -> Path:
        return self.chunk_dir(chunk) / HLS_DIR / quality

    def chunk_frames_dir(self, chunk: Chunk) -> Path:
        """The storyboard's frames of one chunk, named by their index in the whole video."""
        return self.chunk_dir(chunk) / STORYBOARD_DIR

    def chunk_frame(self, chunk: Chunk, frame: int) -> Path:
        return self.chunk_frames_dir(chunk) / storyboard_frame_file(frame)

    def concat_list(self, quality: str) -> Path:
        return self.root / f"{quality}.ffconcat"

    @property
    def audio(self) -> Path:
        return self.root / AUDIO_FILE


def build_chunk_command(
    ffmpeg: Path,
    source: Source,
    info: MediaInfo,
    ladder: Sequence[Rung],
    chunk: Chunk,
    layout: ChunkLayout,
    *,
    threads: int | None = None,
) -> list[str]:
    """Decode one chunk's time range once (accurate seek) and encode every rung, video only,
    and write the storyboard's frames of its range."""
    argv = [*global_args(ffmpeg, threads), *thread_args(threads), "-ss", seconds_arg(chunk.start)]
    if not chunk.to_end:
        argv += ["-t", seconds_arg(chunk.duration)]
    argv += [*input_args(source), "-filter_complex", chunk_filter_graph(info, ladder, chunk)]
    for rung in ladder:
        # The renditions' encoder settings, keyframes included: chunk-local time 0 is a
        # multiple of the keyframe interval, so the forced keyframes land where one pass puts them.
        argv += rendition_args(rung, False, threads, tone_mapped=info.is_hdr)
        # Every decoded frame with its own time: the mp4 muxer's default (constant rate) would
        # duplicate the first frame of a chunk that starts most of a frame after its seam.
        argv += ["-fps_mode", "passthrough"]
        argv.append(file_arg(layout.chunk_video(chunk, rung.quality)))
    plan = storyboard_of(info)
    if plan is not None:
        first = chunk_first_number(plan, chunk.start, chunk_frames(plan, chunk), info.fps)
        argv += frames_output_args(layout.chunk_frames_dir(chunk), first, threads)
    return argv


def chunk_filter_graph(info: MediaInfo, ladder: Sequence[Rung], chunk: Chunk) -> str:
    """The source filters of one pass, `split` into the rungs and the storyboard's frames."""
    plan = storyboard_of(info)
    if plan is None:
        return ";".join(rung_filters(info, ladder))
    parts = rung_filters(info, ladder, extra=("[s]",))
    frames = chunk_frames_filter(plan, chunk.start, chunk_frames(plan, chunk), info.fps)
    return ";".join([*parts, f"[s]{frames}[story]"])


def chunk_frames(plan: StoryboardPlan, chunk: Chunk) -> range:
    """The storyboard's frames whose times fall in the chunk's range."""
    return plan.frames_in(chunk.start, None if chunk.to_end else chunk.start + chunk.duration)


def build_audio_command(
    ffmpeg: Path, source: Path, layout: ChunkLayout, *, threads: int | None = None
) -> list[str]:
    """The whole file's audio encoded once, as the renditions' AAC."""
    argv = [*global_args(ffmpeg, threads), *thread_args(threads), *input_args(source)]
    argv += ["-map", "0:a:0", "-vn", *AAC_ARGS, *NO_METADATA, "-f", "mp4", file_arg(layout.audio)]
    return argv


def build_stills_command(
    ffmpeg: Path,
    source: Path,
    outdir: Path,
    info: MediaInfo,
    ladder: Sequence[Rung],
    *,
    threads: int | None = None,
    webp: bool = True,
) -> list[str]:
    """The thumbnail and the GIF (and the WebP with `webp`), each from the source seeked to
    its time, as in one pass."""
    top = ladder[0]
    source_steps = "".join(f"{step}," for step in source_filters(info))
    argv = [*global_args(ffmpeg, threads), *thread_args(threads)]
    # Bounded like the GIF's input: frames past the thumbnail's would still be decoded and
    # scaled for as long as the GIF takes.
    argv += ["-ss", seconds_arg(thumbnail_time(info.duration)), "-t", f"{GIF_SECONDS:g}"]
    argv += input_args(source)
    argv += ["-ss", seconds_arg(gif_start(info.duration)), "-t", f"{GIF_SECONDS:g}"]
    argv += input_args(source)
    graph = [
        f"[0:v:0]{source_steps}scale={top.width}:{top.height},setsar=1[thumb]",
        f"[1:v:0]{source_steps}{gif_filters(top, webp=webp)}",
    ]
    argv += ["-filter_complex", ";".join(graph)]
    return argv + stills_output_args(Layout(outdir), threads, webp=webp)


def concat_list(chunks: Sequence[Chunk], quality: str) -> str:
    """The concat demuxer's list of one rung's chunks, relative to the list's directory."""
    lines = ["ffconcat version 1.0"]
    lines += [f"file {chunk.name}/{rendition_file(quality)}" for chunk in chunks]
    return "\n".join(lines) + "\n"


def build_stitch_command(
    ffmpeg: Path, outdir: Path, layout: ChunkLayout, ladder: Sequence[Rung], *, has_audio: bool
) -> list[str]:
    """Every rung's MP4: its chunks' video and the audio, by stream copy, no decode or encode."""
    renditions = Layout(outdir)
    argv = global_args(ffmpeg, None)
    for rung in ladder:
        # Safe mode (no `-safe 0`): the lists name relative, portable paths only.
        argv += ["-f", "concat", *input_args(layout.concat_list(rung.quality), STITCH_FORMATS)]
    if has_audio:
        argv += input_args(layout.audio, RENDITION_FORMATS)
    for index, rung in enumerate(ladder):
        argv += ["-map", f"{index}:v:0"]
        if has_audio:
            argv += ["-map", f"{len(ladder)}:a:0"]
        argv += ["-c", "copy", *NO_METADATA]
        argv += ["-movflags", "+faststart", "-f", "mp4", file_arg(renditions.video(rung.quality))]
    return argv
