"""The storyboard plan: frame interval, tile size, sprites, and a WebVTT index whose cues cover
the whole duration and point inside real sprites, and frames picked at each cue's start."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from tests.media import Media
from tests.storyboard_support import cues
from videoforge.storage.layout import sprite_file
from videoforge.transcode.command import Layout, build_tile_command, frames_output_args
from videoforge.transcode.storyboard import (
    MAX_FRAMES,
    chunk_first_number,
    chunk_frames_filter,
    frames_filter,
    plan_storyboard,
    storyboard_vtt,
)


@pytest.mark.parametrize(
    ("duration", "interval", "frames", "sprites"),
    [
        (0.5, 1.0, 1, 1),
        (10.0, 1.0, 10, 1),
        (100.0, 1.0, 100, 1),
        (150.5, 1.0, 151, 2),
        (200.0, 1.0, 200, 2),
        (600.0, 3.0, 200, 2),
        (3600.0, 18.0, 200, 2),
    ],
)
def test_a_frame_every_second_or_every_two_hundredth_of_the_video(
    duration: float, interval: float, frames: int, sprites: int
) -> None:
    plan = plan_storyboard(duration, 1920, 1080)
    assert plan.interval == interval
    assert plan.frames == frames <= MAX_FRAMES
    assert plan.sprites == sprites


@pytest.mark.parametrize(
    ("width", "height", "tile_height"),
    [(1920, 1080, 90), (1280, 720, 90), (1080, 1920, 284), (641, 359, 90), (4000, 10, 2)],
)
def test_tiles_are_160_wide_with_the_aspect_kept_and_an_even_height(
    width: int, height: int, tile_height: int
) -> None:
    plan = plan_storyboard(60, width, height)
    assert (plan.tile_width, plan.tile_height) == (160, tile_height)


@pytest.mark.parametrize("duration", [0.5, 7.25, 100.0, 150.5, 3599.9])
def test_cues_tile_the_whole_duration_without_gaps_and_stay_inside_their_sprite(
    duration: float,
) -> None:
    plan = plan_storyboard(duration, 1280, 720)
    found = cues(storyboard_vtt(plan))
    assert storyboard_vtt(plan).startswith("WEBVTT\n\n")
    assert len(found) == plan.frames
    assert found[0][0] == 0
    assert found[-1][1] == pytest.approx(duration, abs=0.001)
    for (_, end, *_), (start, *_) in itertools.pairwise(found):
        assert start == end  # no gap, no overlap
    for start, end, sprite, x, y, w, h in found:
        assert start < end
        assert sprite in {sprite_file(i) for i in range(plan.sprites)}
        assert (w, h) == (plan.tile_width, plan.tile_height)
        assert x + w <= plan.columns * w and y + h <= plan.rows * h


@pytest.mark.parametrize(
    ("duration", "grid"),
    [(1, (1, 1)), (2, (2, 1)), (15, (10, 2)), (100, (10, 10)), (600, (10, 10))],
)
def test_a_short_storyboard_gets_one_sprite_just_big_enough(
    duration: float, grid: tuple[int, int]
) -> None:
    plan = plan_storyboard(duration, 1280, 720)
    assert (plan.columns, plan.rows) == grid
    assert plan.tile_filter == f"tile={grid[0]}x{grid[1]}"
    assert plan.sprite_size == (grid[0] * 160, grid[1] * 90)
    assert plan.sprites == math.ceil(plan.frames / (grid[0] * grid[1]))


def test_sprite_references_go_through_the_url_given() -> None:
    plan = plan_storyboard(5, 640, 360)
    vtt = storyboard_vtt(plan, lambda name: f"https://cdn.example/signed/{name}?t=1")
    assert "https://cdn.example/signed/storyboard-000.jpg?t=1#xywh=0,0,160,90" in vtt


def test_a_video_without_duration_or_size_has_no_storyboard() -> None:
    for duration, width, height in [(0, 640, 360), (10, 0, 360), (10, 640, 0)]:
        with pytest.raises(ValueError, match="no storyboard"):
            plan_storyboard(duration, width, height)


def test_ffmpeg_makes_the_sprites_the_cues_point_into(media: Media, tmp_path: Path) -> None:
    """The production frames and tiling over a real clip: one JPEG per sprite, each as large as
    its grid, and every cue's rectangle inside the sprite it names."""
    source = media.clip("storyboard", 320, 180, seconds=12)
    plan = plan_storyboard(12, 320, 180)
    layout = Layout(tmp_path)
    write_frames(media, source, frames_filter(plan, 25.0), layout.frames, 0)
    layout.storyboard_dir.mkdir()
    media.ffmpeg(*build_tile_command(media.binaries.ffmpeg, layout, plan)[1:])

    made = sorted(path.name for path in layout.storyboard_dir.glob("storyboard-*.jpg"))
    assert made == [sprite_file(i) for i in range(plan.sprites)]
    stream = media.streams(layout.sprite(0))[0]
    size = (stream["width"], stream["height"])
    assert size == (plan.columns * plan.tile_width, plan.rows * plan.tile_height)
    for _, _, sprite, x, y, w, h in cues(storyboard_vtt(plan)):
        assert sprite in made
        assert x + w <= size[0] and y + h <= size[1]


def test_each_cue_shows_the_first_frame_at_or_after_its_start_in_one_pass_and_in_chunks(
    media: Media, tmp_path: Path
) -> None:
    """A 10 fps clip whose frame n has luma 16 + 3n: the one pass's frames and a chunk's
    (decoded from 2 s, as chunks are) are the source frames at each cue's start, 10 per
    second, not the last of each interval (what `fps=...:round=down` picks)."""
    source = tmp_path / "numbered.mp4"
    numbered = "color=black:s=64x36:r=10:d=6,geq=lum='16+3*N':cb=128:cr=128"
    media.ffmpeg("-f", "lavfi", "-i", numbered, "-c:v", "libx264", "-crf", "0", str(source))
    plan = plan_storyboard(6.0, 64, 36)
    assert plan.interval == 1.0
    whole = tmp_path / "whole"
    write_frames(media, source, frames_filter(plan, 10.0), whole, 0)
    assert frame_numbers(media, whole) == [0, 10, 20, 30, 40, 50]

    owned = plan.frames_in(2.0, None)
    chunk = tmp_path / "chunk"
    first = chunk_first_number(plan, 2.0, owned, 10.0)
    assert first == 2  # on a frame's time: no spare, which would push it a video frame later
    write_frames(media, source, chunk_frames_filter(plan, 2.0, owned, 10.0), chunk, first, 2.0)
    assert frame_numbers(media, chunk) == [20, 30, 40, 50]


def write_frames(
    media: Media, source: Path, frames: str, directory: Path, first: int, start: float = 0.0
) -> None:
    """The storyboard frames of `frames` (a filter) from `source` decoded from `start` s, with
    the output arguments the transcode uses."""
    directory.mkdir()
    argv = ["-ss", f"{start:.3f}", "-i", str(source), "-filter_complex", f"[0:v:0]{frames}[story]"]
    media.ffmpeg(*argv, *frames_output_args(directory, first, None))


def frame_numbers(media: Media, directory: Path) -> list[int]:
    """The source frame each JPEG in `directory` shows, from its mean luma (`signalstats`):
    16 + 3n in the source, in full range once a JPEG (x 255 / 219 from 16)."""
    numbers = []
    for path in sorted(directory.glob("frame-*.jpg")):
        stats = media.ffprobe(
            Path(f"movie={path},signalstats"),
            *("-f", "lavfi", "-show_entries", "frame_tags=lavfi.signalstats.YAVG"),
        )
        luma = float(stats["frames"][0]["tags"]["lavfi.signalstats.YAVG"])
        numbers.append(round(luma * 219 / 255 / 3))
    return numbers


@pytest.mark.parametrize("duration", [0.5, 40.0, 150.5, 1234.5])
def test_frames_of_consecutive_ranges_share_none_and_miss_none(duration: float) -> None:
    plan = plan_storyboard(duration, 1280, 720)
    seams = [0.0, 8.0, 16.0, 60.0, 600.0]
    seams = [s for s in seams if s < duration]
    bounds = [*itertools.pairwise(seams), (seams[-1], None)]
    ranges = [plan.frames_in(start, end) for start, end in bounds]
    assert [i for r in ranges for i in r] == list(range(plan.frames))
    for (start, end), found in zip(bounds, ranges, strict=True):
        for frame in found:
            assert start <= frame * plan.interval < (end or duration)


def test_plan_of_the_frames_written_still_covers_the_whole_duration() -> None:
    plan = plan_storyboard(40.0, 1280, 720).with_frames(39)  # the last frame came early
    found = cues(storyboard_vtt(plan))
    assert len(found) == 39
    assert found[-1][:2] == (38.0, 40.0)


@pytest.mark.parametrize("frames", [0, 41])
def test_plan_of_no_frames_or_more_than_planned_is_refused(frames: int) -> None:
    with pytest.raises(ValueError, match="frames for a storyboard of 40"):
        plan_storyboard(40.0, 1280, 720).with_frames(frames)


def test_a_chunk_past_the_first_writes_a_spare_first_so_its_progress_starts_at_once() -> None:
    plan = plan_storyboard(600.0, 1280, 720)  # a frame every 3 s
    owned = plan.frames_in(16.0, 24.0)
    assert owned == range(6, 8)  # 18 s and 21 s
    assert chunk_first_number(plan, 16.0, owned, 25.0) == 5
    assert chunk_frames_filter(plan, 16.0, owned, 25.0) == (
        "select='eq(n,0)+gte(t+16.000000,(6+selected_n-1)*3.000000-0.020000)"
        "*lt((6+selected_n-1),8)',scale=160:90,setsar=1"
    )
    first = plan.frames_in(0.0, 16.0)
    assert chunk_first_number(plan, 0.0, first, 25.0) == 0
    assert chunk_frames_filter(plan, 0.0, first, 25.0).startswith(
        "select='gte(t+0.000000,(0+selected_n)*3.000000-0.020000)*lt((0+selected_n),6)'"
    )
