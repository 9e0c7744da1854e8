"""What a transcode hands the worker: its outputs, and the checks both ways of making them share
(one pass, `videoforge.transcode.pipeline`; chunk by chunk, `videoforge.transcode.chunked`)."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from videoforge.config import TranscodeConfig
from videoforge.transcode.command import Layout, build_tile_command, gif_size
from videoforge.transcode.ladder import Rung
from videoforge.transcode.probe import MediaInfo
from videoforge.transcode.progress import ProgressCallback
from videoforge.transcode.runner import TranscodeFailed, TranscodeTimedOut, run_ffmpeg
from videoforge.transcode.storyboard import StoryboardPlan, storyboard_of, storyboard_vtt

log = logging.getLogger(__name__)

TIMEOUT_GRACE_S = 60.0
# Tiling ~200 small JPEGs takes a fraction of a second; past this, no storyboard.
TILING_BUDGET_S = 60.0
_FRAME_NAME = re.compile(r"frame-(\d{5,})\.jpg")

# "storyboard" is the WebVTT index (its size: a tile's), each "sprite" one of its JPEGs;
# "webp" is the animated WebP, made only where it is smaller than the "gif" (either is the
# video's preview: its `preview_key`).
OutputKind = Literal["video", "thumbnail", "gif", "webp", "hls", "storyboard", "sprite"]


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
    layout: Layout,
    info: MediaInfo,
    ladder: Sequence[Rung],
    master: Path,
    stored_bytes: int = 0,
    storyboard: StoryboardPlan | None = None,
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
    if layout.preview_webp.is_file():
        webp = layout.preview_webp
        outputs.append(OutputFile("webp", None, webp, "webp", gif_width, gif_height, None))
    hls = OutputFile("hls", None, master, "hls", top.width, top.height, None, stored_bytes)
    outputs.append(hls)
    return outputs + storyboard_outputs(layout, storyboard)


def storyboard_outputs(layout: Layout, plan: StoryboardPlan | None) -> list[OutputFile]:
    """The storyboard's index and each of its sprites; none without a storyboard."""
    if plan is None:
        return []
    index = layout.storyboard
    outputs = [
        OutputFile("storyboard", None, index, "vtt", plan.tile_width, plan.tile_height, None)
    ]
    width, height = plan.sprite_size
    for sprite in range(plan.sprites):
        outputs.append(
            OutputFile("sprite", None, layout.sprite(sprite), "jpg", width, height, None)
        )
    return outputs


def make_dirs(layout: Layout, ladder: Sequence[Rung]) -> None:
    # The worker uploads the whole hls/ directory: nothing from an earlier attempt may linger,
    # nor a frame of an earlier attempt's storyboard, which would be tiled in.
    for directory in (layout.hls, layout.frames, layout.storyboard_dir):
        shutil.rmtree(directory, ignore_errors=True)
    layout.preview_webp.unlink(missing_ok=True)  # kept only if this attempt's is the smaller
    layout.frames.mkdir(parents=True)
    for rung in ladder:
        layout.variant(rung.quality).parent.mkdir(parents=True, exist_ok=True)


def keep_smaller_preview(layout: Layout) -> None:
    """Keep the animated WebP only where it is smaller than the GIF (which always stays)."""
    webp = layout.preview_webp
    size = webp.stat().st_size if webp.is_file() else 0
    if not 0 < size < layout.preview.stat().st_size:
        webp.unlink(missing_ok=True)


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

    def capped(self, seconds: float) -> TimeLimit:
        """This limit, or `seconds` from now where that comes first."""
        return TimeLimit(min(self.deadline, asyncio.get_running_loop().time() + seconds))

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


async def make_storyboard(
    ffmpeg: Path, layout: Layout, info: MediaInfo, limit: TimeLimit
) -> StoryboardPlan | None:
    """Tile the frames in `layout.frames` into sprites and write the index that names them;
    the plan of the frames really written. No storyboard (None) rather than a failed job when
    none were written or the tiling fails or runs out of time: players then just show no
    thumbnails. The frames' work dir is gone either way."""
    planned = storyboard_of(info)
    frames = 0 if planned is None else collect_frames(layout, planned.frames)
    if planned is None or frames == 0:
        shutil.rmtree(layout.frames, ignore_errors=True)
        if planned is not None:  # a source without duration or size has none to write
            log.warning("no storyboard frames were written: no storyboard")
        return None
    plan = planned.with_frames(frames)
    layout.storyboard_dir.mkdir(parents=True, exist_ok=True)
    try:
        # A budget of its own: an optional output must not spend the job's last seconds, nor
        # fail a finished job by running past its deadline (TranscodeTimedOut is caught here).
        tiling = limit.capped(TILING_BUDGET_S)
        await tiling.run(build_tile_command(ffmpeg, layout, plan), plan.duration, ignore_progress)
        require_files([layout.sprite(i) for i in range(plan.sprites)])
    except TranscodeFailed as exc:
        log.warning("tiling the storyboard failed (%s): no storyboard", exc.message)
        shutil.rmtree(layout.storyboard_dir, ignore_errors=True)
        return None
    finally:
        shutil.rmtree(layout.frames, ignore_errors=True)
    layout.storyboard.write_text(storyboard_vtt(plan))
    return plan


def collect_frames(layout: Layout, planned: int) -> int:
    """How many frames the storyboard has once those in `layout.frames` are numbered from 0
    without a gap (at most `planned`): a missing frame is its predecessor again (a chunk seam
    may miss one), frames past the last planned are dropped."""
    found = {}
    for path in layout.frames.glob("frame-*.jpg"):
        match = _FRAME_NAME.fullmatch(path.name)
        if match is not None:
            found[int(match[1])] = path
    for index in [index for index in found if index >= planned]:
        found.pop(index).unlink()
    count = max(found, default=-1) + 1
    if count > 0 and 0 not in found:
        shutil.copyfile(found[min(found)], layout.frame(0))
    for index in range(1, count):
        if index not in found:
            shutil.copyfile(layout.frame(index - 1), layout.frame(index))
    return count


def ignore_progress(fraction: float) -> None:
    return None
