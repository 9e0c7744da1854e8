"""Storyboards: the seek-bar thumbnails players show, as JPEG sprites and a WebVTT index.

A frame every `max(1, duration / 200)` seconds, scaled to 160 px wide, tiled 10 x 10 into each
sprite (fewer frames into one sprite just big enough); `storyboard.vtt` has one cue per frame,
covering the whole duration without a gap, whose text is `sprite.jpg#xywh=x,y,w,h` (the
media-fragment form Mux, Vidstack, video.js and Plyr read).

The transcode's decode writes the frames as small JPEGs, for each cue the first decoded frame
at or after its start (`frames_filter`, or a chunk's `chunk_frames_filter`: the same selection);
one small ffmpeg run then tiles them (`tile_filter`). The plan is rebuilt from the frames that
were really written (`with_frames`): a stream whose last frame comes early yields one fewer,
and the index must only name tiles that exist.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from videoforge.storage.layout import sprite_file
from videoforge.support.webvtt import timestamp
from videoforge.transcode.probe import MediaInfo

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

    @property
    def columns(self) -> int:
        """10, or fewer for a storyboard of fewer frames: a 2 s clip's sprite is 2 tiles wide,
        not 10 x 10 of mostly padding."""
        return min(COLUMNS, self.frames)

    @property
    def rows(self) -> int:
        return min(ROWS, math.ceil(self.frames / self.columns))

    @property
    def per_sprite(self) -> int:
        return self.columns * self.rows

    @property
    def sprites(self) -> int:
        return math.ceil(self.frames / self.per_sprite)

    @property
    def sprite_size(self) -> tuple[int, int]:
        """Every sprite's pixel size: the tile filter pads the last one to the full grid."""
        return self.columns * self.tile_width, self.rows * self.tile_height

    @property
    def scale_filter(self) -> str:
        return f"scale={self.tile_width}:{self.tile_height},setsar=1"

    @property
    def tile_filter(self) -> str:
        """The storyboard's frames, in order, to sprites."""
        return f"tile={self.columns}x{self.rows}"

    def first_frame_at(self, seconds: float) -> int:
        """The index of the first frame whose time is `seconds` or later."""
        return min(self.frames, max(0, math.ceil(seconds / self.interval - 1e-9)))

    def frames_in(self, start: float, end: float | None) -> range:
        """The frames whose times lie in `[start, end)` (to the last frame when `end` is None):
        consecutive ranges share no frame and miss none."""
        last = self.frames if end is None else self.first_frame_at(end)
        return range(self.first_frame_at(start), last)

    def with_frames(self, frames: int) -> StoryboardPlan:
        """The plan of the `frames` that were really written (at most those planned)."""
        if not 0 < frames <= self.frames:
            raise ValueError(f"{frames} frames for a storyboard of {self.frames}")
        return replace(self, frames=frames)

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


def storyboard_of(info: MediaInfo) -> StoryboardPlan | None:
    """The storyboard of a probed source (its display size); None without duration or size."""
    if info.duration <= 0 or info.width <= 0 or info.height <= 0:
        return None
    return plan_storyboard(info.duration, info.width, info.height)


def frames_filter(plan: StoryboardPlan, fps: float) -> str:
    """The one pass's frames: for each frame of the plan, the first decoded frame from that
    frame's time on, as a chunk picks them (the first, at 0 s, leaves at once, so the first
    progress report is not held back). `fps=...:round=down` would keep the last decoded frame
    of each interval instead: every thumbnail would show the end of its cue."""
    return _select_filter(plan, 0.0, range(plan.frames), fps, spare=False)


def chunk_frames_filter(plan: StoryboardPlan, start: float, owned: range, fps: float) -> str:
    """A chunk's frames, its decode starting at `start` s of the source: for each frame of
    `owned`, the first decoded frame from that frame's time on (frame times are global:
    chunk-local time plus `start`). A chunk whose first decoded frame is not one of its own
    (`chunk_has_spare`) writes that frame first, a spare numbered `owned.start - 1` that the
    caller deletes: its output then has a packet at once, and the chunk's progress is never held
    back until its first frame's time."""
    spare = chunk_has_spare(plan, start, owned, fps)
    return _select_filter(plan, start, owned, fps, spare=spare)


def _select_filter(
    plan: StoryboardPlan, start: float, owned: range, fps: float, *, spare: bool
) -> str:
    # The n-th frame selected (after the spare, if any) is frame `owned.start + n`: selected
    # once the decode reaches its time.
    index = f"({owned.start}+selected_n{'-1' if spare else ''})"
    early = f"{_early(fps):.6f}"
    due = f"gte(t+{start:.6f},{index}*{plan.interval:.6f}-{early})*lt({index},{owned.stop})"
    return f"select='{'eq(n,0)+' if spare else ''}{due}',{plan.scale_filter}"


def _early(fps: float) -> float:
    # Half a frame early counts as on time: float times just short of a frame's time.
    return 0.5 / fps if fps > 0 else 0.0


def chunk_has_spare(plan: StoryboardPlan, start: float, owned: range, fps: float) -> bool:
    """Whether a chunk whose decode starts at `start` s writes a spare first: unless its first
    decoded frame is already due as its first own frame (at 0 s, or a chunk starting on a
    frame's time, where a spare would push that frame one video frame later)."""
    return owned.start * plan.interval - _early(fps) > start


def chunk_first_number(plan: StoryboardPlan, start: float, owned: range, fps: float) -> int:
    """The number of the first file a chunk writes: its spare's, else its first frame's."""
    spare = chunk_has_spare(plan, start, owned, fps)
    return owned.start - 1 if spare else owned.start


def storyboard_vtt(plan: StoryboardPlan, sprite_url: Callable[[str], str] = str) -> str:
    """The WebVTT index: cue `i` spans frame i's interval (the last ends with the video)."""
    lines = ["WEBVTT", ""]
    for frame in range(plan.frames):
        start = frame * plan.interval
        end = plan.duration if frame == plan.frames - 1 else (frame + 1) * plan.interval
        sprite, x, y, w, h = plan.tile(frame)
        lines += [
            f"{timestamp(start)} --> {timestamp(end)}",
            f"{sprite_url(sprite_file(sprite))}#xywh={x},{y},{w},{h}",
            "",
        ]
    return "\n".join(lines)
