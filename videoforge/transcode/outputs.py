"""What a transcode hands the worker: its outputs, and the checks both ways of making them share
(one pass, `videoforge.transcode.pipeline`; chunk by chunk, `videoforge.transcode.chunked`)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from videoforge.config import TranscodeConfig
from videoforge.transcode.command import Layout, gif_size
from videoforge.transcode.ladder import Rung
from videoforge.transcode.probe import MediaInfo
from videoforge.transcode.progress import ProgressCallback
from videoforge.transcode.runner import TranscodeFailed, TranscodeTimedOut, run_ffmpeg

TIMEOUT_GRACE_S = 60.0

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
    stored_bytes: int = 0  # of an "hls" package, already in storage rather than beside `path`


@dataclass(frozen=True)
class TranscodeResult:
    info: MediaInfo
    ladder: list[Rung]
    outputs: list[OutputFile]


def transcode_timeout(info: MediaInfo, config: TranscodeConfig) -> float:
    """How long every ffmpeg run of one job may take in total."""
    return config.timeout_factor * info.duration + TIMEOUT_GRACE_S


def outputs_of(
    layout: Layout, info: MediaInfo, ladder: Sequence[Rung], master: Path, stored_bytes: int = 0
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
    hls = OutputFile("hls", None, master, "hls", top.width, top.height, None, stored_bytes)
    outputs.append(hls)
    return outputs


def make_dirs(layout: Layout, ladder: Sequence[Rung]) -> None:
    # The worker uploads the whole hls/ directory: nothing from an earlier attempt may linger.
    shutil.rmtree(layout.hls, ignore_errors=True)
    layout.outdir.mkdir(parents=True, exist_ok=True)
    for rung in ladder:
        layout.variant(rung.quality).parent.mkdir(parents=True, exist_ok=True)


def require_files(paths: Sequence[Path]) -> None:
    # ffmpeg exits 0 when an output got no frames (a thumbnail moment past the last frame).
    missing = [p.name for p in paths if not p.is_file() or p.stat().st_size == 0]
    if missing:
        raise TranscodeFailed(f"ffmpeg wrote no {', '.join(missing)}")


@dataclass(frozen=True)
class TimeLimit:
    """The one deadline every ffmpeg run of a transcode shares (the event loop's clock)."""

    deadline: float

    @classmethod
    def of(cls, info: MediaInfo, config: TranscodeConfig) -> TimeLimit:
        """The limit of a transcode of `info` starting now (`transcode_timeout`)."""
        return cls(asyncio.get_running_loop().time() + transcode_timeout(info, config))

    def remaining(self) -> float:
        """Seconds left for the next ffmpeg run; TranscodeTimedOut once none are."""
        left = self.deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise TranscodeTimedOut()
        return left

    async def run(self, argv: list[str], duration: float, on_progress: ProgressCallback) -> None:
        """One ffmpeg run within what is left of the limit, reporting every progress block."""
        await run_ffmpeg(
            argv,
            duration=duration,
            timeout=self.remaining(),
            on_progress=on_progress,
            min_interval=0,
        )


def ignore_progress(fraction: float) -> None:
    return None
