"""A local file in, every output in a directory: probe, check, encode once, package HLS.

No storage and no database here: the worker downloads the input and uploads what we return.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from videoforge.config import TranscodeConfig
from videoforge.transcode.binaries import Binaries
from videoforge.transcode.chunks import chunking_applies
from videoforge.transcode.command import Layout, build_command, build_hls_command, gif_size
from videoforge.transcode.ladder import Rung, plan_ladder
from videoforge.transcode.master_playlist import write_master_playlist
from videoforge.transcode.probe import MediaInfo, check_limits, probe
from videoforge.transcode.progress import ProgressCallback, ProgressThrottle
from videoforge.transcode.runner import TranscodeFailed, TranscodeTimedOut, run_ffmpeg

TIMEOUT_GRACE_S = 60.0
# Share of the progress range for the encode; the HLS remux (a copy) takes the rest.
ENCODE_SHARE = 0.95

OutputKind = Literal["video", "thumbnail", "gif", "hls"]


@dataclass(frozen=True)
class OutputFile:
    kind: OutputKind
    quality: str | None
    path: Path  # for "hls", the master playlist: the whole directory belongs to it
    format: str
    width: int
    height: int
    bitrate: int | None  # bits per second, for "video" only


@dataclass(frozen=True)
class TranscodeResult:
    info: MediaInfo
    ladder: list[Rung]
    outputs: list[OutputFile]


def transcode_timeout(info: MediaInfo, config: TranscodeConfig) -> float:
    """How long every ffmpeg run of one job may take in total."""
    return config.timeout_factor * info.duration + TIMEOUT_GRACE_S


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
) -> TranscodeResult:
    """Transcode `source` into `outdir`; progress goes from 0 to 1.0, 1.0 only once done.

    A source longer than two of `config.chunk_seconds` is transcoded in chunks (`chunked`).

    `info` is the source's probe when the caller already has it (checked against the limits).
    Raises InvalidMedia or TranscodeFailed (TranscodeTimedOut past the time limit of
    `transcode_timeout`); a cancellation kills ffmpeg.
    """
    if info is None:
        info = await probe(binaries.ffprobe, source)
        check_limits(info, config)
    if chunking_applies(info.duration, config.chunk_seconds):
        # Imported here: the chunked run builds on this module's result and helpers.
        from videoforge.transcode.chunked import transcode_chunked

        return await transcode_chunked(
            binaries, config, source, outdir, qualities, on_progress, threads=threads, info=info
        )
    ladder = plan_ladder(info, qualities)
    layout = Layout(outdir)
    throttle = ProgressThrottle(on_progress or _ignore)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + transcode_timeout(info, config)

    async def encode_progress(fraction: float) -> None:
        await throttle.report(fraction * ENCODE_SHARE)

    async def package_progress(fraction: float) -> None:
        await throttle.report(ENCODE_SHARE + fraction * (1 - ENCODE_SHARE))

    _make_dirs(layout, ladder)
    encode = build_command(binaries.ffmpeg, source, outdir, info, ladder, threads=threads)
    await run_ffmpeg(
        encode,
        duration=info.duration,
        timeout=_remaining(deadline, loop),
        on_progress=encode_progress,
        min_interval=0,
    )
    _require_files([layout.video(r.quality) for r in ladder] + [layout.thumbnail, layout.preview])
    package = build_hls_command(binaries.ffmpeg, outdir, ladder, has_audio=info.has_audio)
    await run_ffmpeg(
        package,
        duration=info.duration,
        timeout=_remaining(deadline, loop),
        on_progress=package_progress,
        min_interval=0,
    )
    master = write_master_playlist(layout.hls, ladder, has_audio=info.has_audio)
    await throttle.report(1.0, final=True)
    return TranscodeResult(info, ladder, _outputs(layout, info, ladder, master))


def _outputs(
    layout: Layout, info: MediaInfo, ladder: Sequence[Rung], master: Path
) -> list[OutputFile]:
    top = ladder[0]
    outputs = [
        OutputFile(
            "video",
            rung.quality,
            layout.video(rung.quality),
            "mp4",
            rung.width,
            rung.height,
            round(layout.video(rung.quality).stat().st_size * 8 / info.duration),
        )
        for rung in ladder
    ]
    gif_width, gif_height = gif_size(top)
    outputs.append(
        OutputFile("thumbnail", None, layout.thumbnail, "jpg", top.width, top.height, None)
    )
    outputs.append(OutputFile("gif", None, layout.preview, "gif", gif_width, gif_height, None))
    outputs.append(OutputFile("hls", None, master, "hls", top.width, top.height, None))
    return outputs


def _make_dirs(layout: Layout, ladder: Sequence[Rung]) -> None:
    # The worker uploads the whole hls/ directory: nothing from an earlier attempt may linger.
    shutil.rmtree(layout.hls, ignore_errors=True)
    layout.outdir.mkdir(parents=True, exist_ok=True)
    for rung in ladder:
        layout.variant(rung.quality).parent.mkdir(parents=True, exist_ok=True)


def _require_files(paths: Sequence[Path]) -> None:
    # ffmpeg exits 0 when an output got no frames (a thumbnail moment past the last frame).
    missing = [p.name for p in paths if not p.is_file() or p.stat().st_size == 0]
    if missing:
        raise TranscodeFailed(f"ffmpeg wrote no {', '.join(missing)}")


def _remaining(deadline: float, loop: asyncio.AbstractEventLoop) -> float:
    remaining = deadline - loop.time()
    if remaining <= 0:
        raise TranscodeTimedOut()
    return remaining


def _ignore(fraction: float) -> None:
    return None
