"""Storyboards: the seek-bar thumbnails players show, as JPEG sprites and a WebVTT index.

A frame every `max(1, duration / 200)` seconds, scaled to 160 px wide, tiled 10 x 10 into each
sprite; `storyboard.vtt` has one cue per frame, covering the whole duration without a gap, whose
text is `sprite.jpg#xywh=x,y,w,h` (the media-fragment form Mux, Vidstack, video.js and Plyr read).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from videoforge.storage.layout import sprite_file

TILE_WIDTH = 160
COLUMNS = ROWS = 10
MAX_FRAMES = 200
MIN_INTERVAL_S = 1.0


@dataclass(frozen=True)
class StoryboardPlan:
    duration: float
    interval: float  # seconds between two frames
    frames: int
    tile_width: int
    tile_height: int
    columns: int = COLUMNS
    rows: int = ROWS

    @property
    def per_sprite(self) -> int:
        return self.columns * self.rows

    @property
    def sprites(self) -> int:
        return math.ceil(self.frames / self.per_sprite)

    @property
    def filter(self) -> str:
        """The ffmpeg filter chain that turns decoded frames into sprites."""
        scale = f"scale={self.tile_width}:{self.tile_height}"
        tile = f"tile={self.columns}x{self.rows}"
        return f"fps=fps=1/{self.interval:.6f}:round=down,{scale},{tile}"

    def tile(self, frame: int) -> tuple[int, int, int, int, int]:
        """Where frame `frame` lies: (sprite, x, y, w, h)."""
        sprite, position = divmod(frame, self.per_sprite)
        row, column = divmod(position, self.columns)
        return (
            sprite,
            column * self.tile_width,
            row * self.tile_height,
            self.tile_width,
            self.tile_height,
        )


def plan_storyboard(duration: float, width: int, height: int) -> StoryboardPlan:
    """The storyboard of a source of that duration and display size."""
    if duration <= 0 or width <= 0 or height <= 0:
        raise ValueError(f"no storyboard for {duration} s of {width}x{height}")
    interval = max(MIN_INTERVAL_S, duration / MAX_FRAMES)
    frames = max(1, math.ceil(duration / interval - 1e-9))
    # Even, as the encoders of the sprites' JPEGs need no more; the aspect kept to the pixel.
    tile_height = max(2, round(TILE_WIDTH * height / width / 2) * 2)
    return StoryboardPlan(duration, interval, frames, TILE_WIDTH, tile_height)


def storyboard_vtt(plan: StoryboardPlan, sprite_url: Callable[[str], str] = str) -> str:
    """The WebVTT index: cue `i` spans frame i's interval (the last ends with the video)."""
    lines = ["WEBVTT", ""]
    for frame in range(plan.frames):
        start = frame * plan.interval
        end = plan.duration if frame == plan.frames - 1 else (frame + 1) * plan.interval
        sprite, x, y, w, h = plan.tile(frame)
        lines += [
            f"{_timestamp(start)} --> {_timestamp(end)}",
            f"{sprite_url(sprite_file(sprite))}#xywh={x},{y},{w},{h}",
            "",
        ]
    return "\n".join(lines)


def _timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"
