"""A local file in, every output in a directory: probe, check, encode once, package HLS.

No storage and no database here: the worker downloads the input and uploads what we return.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from videoforge.config import TranscodeConfig
from videoforge.transcode.binaries import Binaries
from videoforge.transcode.capabilities import require_tone_map
from videoforge.transcode.chunked import ChunkRunner, encode_in_chunks
from videoforge.transcode.chunks import chunking_applies
from videoforge.transcode.command import Layout, build_command, build_hls_command
from videoforge.transcode.ladder import plan_ladder
from videoforge.transcode.master_playlist import write_master_playlist
from videoforge.transcode.outputs import (
    OutputFile,
    TimeLimit,
    TranscodeResult,
    ignore_progress,
    keep_smaller_preview,
    make_dirs,
    make_storyboard,
    outputs_of,
    require_files,
    transcode_timeout,
)
from videoforge.transcode.probe import MediaInfo, check_limits, probe
from videoforge.transcode.progress import ProgressCallback, ProgressSteps, ProgressThrottle

__all__ = ["OutputFile", "TranscodeResult", "transcode", "transcode_timeout"]

# Share of the progress range for the encode; the HLS remux (a copy) takes the rest.
ENCODE_SHARE = 0.95


async def transcode(
    binaries: Binaries,
    config: TranscodeConfig,
    source: Path,
    outdir: Path,
    qualities: Sequence[str],
    on_progress: ProgressCallback | None = None,
    *,
    threads: int | None = None,
    info: MediaInfo | None = None,
    chunk_runner: ChunkRunner | None = None,
) -> TranscodeResult:
    """Transcode `source` into `outdir`; progress goes from 0 to 1.0, 1.0 only once done.

    A source longer than two of `config.chunk_seconds` is encoded in chunks (`chunked`); the
    HLS package, the time limit and the progress are the same either way; `chunk_runner`
    encodes the chunks (all here, in turn, by default).

    `info` is the source's probe when the caller already has it (checked against the limits).
    Raises InvalidMedia or TranscodeFailed (TranscodeTimedOut past the time limit of
    `transcode_timeout`); a cancellation kills ffmpeg.
    """
    if info is None:
        info = await probe(binaries.ffprobe, source)
        check_limits(info, config)
    require_tone_map(info, binaries.capabilities)
    ladder = plan_ladder(info, qualities)
    layout = Layout(outdir)
    throttle = ProgressThrottle(on_progress or ignore_progress)
    steps = ProgressSteps(throttle.report)
    limit = TimeLimit.of(info, config)
    make_dirs(layout, ladder)
    # Chunk by chunk, the HLS package is made with the chunks (its share is theirs).
    chunked = chunking_applies(info.duration, config.chunk_seconds)
    encoded = steps.next(None if chunked else ENCODE_SHARE)
    if chunked:
        made = await encode_in_chunks(
            binaries,
            config,
            source,
            outdir,
            info,
            ladder,
            limit,
            encoded,
            threads=threads,
            runner=chunk_runner,
        )
        master, stored_bytes = made.master, made.stored_bytes
    else:
        encode = build_command(
            binaries.ffmpeg,
            source,
            outdir,
            info,
            ladder,
            threads=threads,
            webp=binaries.capabilities.webp,
        )
        await limit.run(encode, info.duration, encoded)
        package = build_hls_command(binaries.ffmpeg, outdir, ladder, has_audio=info.has_audio)
        await limit.run(package, info.duration, steps.next())
        master = write_master_playlist(layout.hls, ladder, has_audio=info.has_audio)
        stored_bytes = 0
    require_files([layout.video(r.quality) for r in ladder] + [layout.thumbnail, layout.preview])
    keep_smaller_preview(layout)
    # The frames came out of the decode (one pass) or the chunks; tiling ~200 small JPEGs is
    # a fraction of a second, inside the last step's share of the progress.
    storyboard = await make_storyboard(binaries.ffmpeg, layout, info, limit)
    await throttle.report(1.0, final=True)
    outputs = outputs_of(layout, info, ladder, master, stored_bytes, storyboard)
    return TranscodeResult(info, ladder, outputs)
