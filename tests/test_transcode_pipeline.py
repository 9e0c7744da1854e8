"""The whole pipeline with real ffmpeg on clips generated at test time, checked with ffprobe."""

from __future__ import annotations

import asyncio
import itertools
import re
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.media import Media, ffmpeg_children, media_library, top_level_boxes
from tests.storyboard_support import check_storyboard
from videoforge.config import TranscodeConfig
from videoforge.transcode import outputs, pipeline
from videoforge.transcode.command import Layout, build_command, frames_output_args
from videoforge.transcode.ladder import plan_ladder
from videoforge.transcode.pipeline import TranscodeResult, transcode
from videoforge.transcode.probe import InvalidMedia, MediaInfo, probe
from videoforge.transcode.runner import TranscodeFailed, TranscodeTimedOut, run_ffmpeg
from videoforge.transcode.storyboard import frames_filter, storyboard_of

ALL = ("high", "medium", "low")
CONFIG = TranscodeConfig()


@dataclass
class Run:
    result: TranscodeResult
    outdir: Path
    progress: list[float]


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    return media_library(tmp_path_factory)


def run(media: Media, source: Path, outdir: Path, qualities: tuple[str, ...] = ALL) -> Run:
    progress: list[float] = []
    result = asyncio.run(
        transcode(media.binaries, CONFIG, source, outdir, qualities, progress.append)
    )
    return Run(result, outdir, progress)


@pytest.fixture(scope="session")
def landscape(media: Media, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The 1280x720 clip through the pipeline once, shared by the tests that inspect it."""
    return run(media, media.landscape(), tmp_path_factory.mktemp("landscape"))


def video_stream(media: Media, path: Path) -> dict[str, object]:
    return next(s for s in media.streams(path) if s["codec_type"] == "video")


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def codec_types(media: Media, path: Path) -> list[object]:
    return [s["codec_type"] for s in media.streams(path)]


def test_transcode_of_720p_clip_writes_every_output(landscape: Run) -> None:
    names = {p.relative_to(landscape.outdir).as_posix() for p in landscape.outdir.rglob("*")}
    assert names >= {
        "medium.mp4",
        "low.mp4",
        "thumbnail.jpg",
        "preview.gif",
        "hls/master.m3u8",
        "hls/medium/index.m3u8",
        "hls/medium/init.mp4",
        "hls/medium/seg_00001.m4s",
        "hls/low/index.m3u8",
        "hls/low/init.mp4",
        "hls/low/seg_00001.m4s",
        "storyboard/storyboard.vtt",
        "storyboard/storyboard-000.jpg",
    }
    assert "high.mp4" not in names
    assert "storyboard-frames" not in names  # the frames' work dir is gone once tiled
    assert [(o.kind, o.quality, o.path.name) for o in landscape.result.outputs] == [
        ("video", "medium", "medium.mp4"),
        ("video", "low", "low.mp4"),
        ("thumbnail", None, "thumbnail.jpg"),
        ("gif", None, "preview.gif"),
        ("webp", None, "preview.webp"),
        ("hls", None, "master.m3u8"),
        ("storyboard", None, "storyboard.vtt"),
        ("sprite", None, "storyboard-000.jpg"),
    ]


def test_transcode_renditions_are_h264_aac_at_the_planned_sizes(
    landscape: Run, media: Media
) -> None:
    for output in landscape.result.outputs[:2]:
        streams = {s["codec_type"]: s for s in media.streams(output.path)}
        video, audio = streams["video"], streams["audio"]
        assert (video["codec_name"], video["pix_fmt"]) == ("h264", "yuv420p")
        assert (video["width"], video["height"]) == (output.width, output.height)
        assert video["avg_frame_rate"] == "25/1"
        assert (audio["codec_name"], audio["channels"]) == ("aac", 2)
    assert [(o.width, o.height) for o in landscape.result.outputs[:2]] == [(1280, 720), (854, 480)]


def test_transcode_renditions_are_faststart(landscape: Run) -> None:
    for quality in ("medium", "low"):
        boxes = top_level_boxes(landscape.outdir / f"{quality}.mp4")
        assert boxes.index("moov") < boxes.index("mdat")


def test_transcode_renditions_have_keyframes_aligned_every_two_seconds(
    landscape: Run, media: Media
) -> None:
    medium = media.keyframe_times(landscape.outdir / "medium.mp4")
    low = media.keyframe_times(landscape.outdir / "low.mp4")
    assert medium == low == [0.0, 2.0]


def test_transcode_gif_is_a_320_wide_animation(landscape: Run, media: Media) -> None:
    gif = landscape.outdir / "preview.gif"
    video = video_stream(media, gif)
    assert (video["codec_name"], video["width"], video["height"]) == ("gif", 320, 180)
    assert media.frame_count(gif) > 10


def test_transcode_keeps_the_animated_webp_where_it_is_smaller_than_the_gif(
    landscape: Run,
) -> None:
    gif, webp = landscape.outdir / "preview.gif", landscape.outdir / "preview.webp"
    assert webp.stat().st_size < gif.stat().st_size
    data = webp.read_bytes()
    assert (data[:4], data[8:12]) == (b"RIFF", b"WEBP") and b"ANIM" in data[:64]
    preview = next(o for o in landscape.result.outputs if o.kind == "webp")
    assert (preview.format, preview.width, preview.height) == ("webp", 320, 180)


def test_transcode_drops_the_animated_webp_where_the_gif_is_smaller(
    media: Media, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A scrolling two-colour automaton: a GIF's palette and LZW beat lossy WebP on it.
    source = tmp_path / "cells.mp4"
    media.ffmpeg(
        *("-f", "lavfi", "-t", "2", "-i", "cellauto=size=320x180:rate=25:rule=18"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(source)),
    )
    sizes: list[tuple[int, int]] = []
    keep = pipeline.keep_smaller_preview

    def measuring(layout: Layout) -> None:
        sizes.append((layout.preview.stat().st_size, layout.preview_webp.stat().st_size))
        keep(layout)

    monkeypatch.setattr(pipeline, "keep_smaller_preview", measuring)
    done = run(media, source, tmp_path / "out", ("low",))
    [(gif, webp)] = sizes
    assert gif < webp
    assert not (tmp_path / "out" / "preview.webp").exists()
    kinds = [o.kind for o in done.result.outputs]
    assert "gif" in kinds and "webp" not in kinds


def test_transcode_thumbnail_is_a_jpeg_as_wide_as_the_largest_rendition(
    landscape: Run, media: Media
) -> None:
    video = video_stream(media, landscape.outdir / "thumbnail.jpg")
    assert (video["codec_name"], video["width"], video["height"]) == ("mjpeg", 1280, 720)


def test_transcode_storyboard_cues_cover_the_video_inside_real_sprites(
    landscape: Run, media: Media
) -> None:
    found = check_storyboard(media, landscape.outdir / "storyboard", landscape.result.info.duration)
    assert [cue[:2] for cue in found] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    storyboard, sprite = landscape.result.outputs[-2:]
    assert (storyboard.format, storyboard.width, storyboard.height) == ("vtt", 160, 90)
    # Three frames: one sprite of 3 x 1 tiles, not a 10 x 10 grid of mostly padding.
    assert (sprite.format, sprite.width, sprite.height) == ("jpg", 480, 90)
    assert (
        video_stream(media, sprite.path)["width"],
        video_stream(media, sprite.path)["height"],
    ) == (480, 90)


def test_transcode_master_playlist_lists_every_rung_relatively(landscape: Run) -> None:
    lines = (landscape.outdir / "hls" / "master.m3u8").read_text().splitlines()
    variants = {
        lines[i + 1]: line for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM")
    }
    assert list(variants) == ["medium/index.m3u8", "low/index.m3u8"]
    for uri, size in zip(variants, ("1280x720", "854x480"), strict=True):
        assert re.search(r"BANDWIDTH=\d+", variants[uri])
        assert f"RESOLUTION={size}" in variants[uri]
        assert re.search(r'CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2"', variants[uri])


def test_transcode_variant_playlists_use_relative_uris_and_fmp4(landscape: Run) -> None:
    for quality in ("medium", "low"):
        text = (landscape.outdir / "hls" / quality / "index.m3u8").read_text()
        assert '#EXT-X-MAP:URI="init.mp4"' in text
        uris = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert uris == ["seg_00001.m4s"]
        assert "#EXT-X-ENDLIST" in text


def test_transcode_hls_package_plays_end_to_end_in_ffmpeg(landscape: Run, media: Media) -> None:
    argv = [str(media.binaries.ffmpeg), "-v", "error", "-nostdin"]
    argv += ["-i", str(landscape.outdir / "hls" / "master.m3u8"), "-map", "0", "-f", "null", "-"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_transcode_reports_increasing_progress_ending_at_one(landscape: Run) -> None:
    assert landscape.progress[-1] == 1.0
    assert all(a < b for a, b in itertools.pairwise(landscape.progress))
    assert all(0 <= value < 1 for value in landscape.progress[:-1])


def test_transcode_result_describes_the_source(landscape: Run) -> None:
    info = landscape.result.info
    assert (info.width, info.height, info.has_audio) == (1280, 720, True)
    assert [r.quality for r in landscape.result.ladder] == ["medium", "low"]


def test_transcode_of_portrait_clip_scales_the_short_side(media: Media, tmp_path: Path) -> None:
    done = run(media, media.portrait(), tmp_path)
    assert [(o.quality, o.width, o.height) for o in done.result.outputs[:2]] == [
        ("medium", 720, 1280),
        ("low", 480, 854),
    ]
    video = video_stream(media, tmp_path / "low.mp4")
    assert (video["width"], video["height"]) == (480, 854)


def test_transcode_of_rotated_clip_writes_upright_outputs(media: Media, tmp_path: Path) -> None:
    done = run(media, media.rotated(), tmp_path)
    assert [(o.quality, o.width, o.height) for o in done.result.outputs[:1]] == [("low", 480, 854)]
    video = video_stream(media, tmp_path / "low.mp4")
    assert (video["width"], video["height"]) == (480, 854)
    assert not video.get("side_data_list")  # turned already: players must not turn it again
    thumbnail = video_stream(media, tmp_path / "thumbnail.jpg")
    assert (thumbnail["width"], thumbnail["height"]) == (480, 854)


def test_transcode_of_clip_without_audio_writes_silent_renditions(
    media: Media, tmp_path: Path
) -> None:
    run(media, media.no_audio(), tmp_path)
    assert codec_types(media, tmp_path / "low.mp4") == ["video"]
    assert 'CODECS="avc1.' in (tmp_path / "hls" / "master.m3u8").read_text()
    assert "mp4a" not in (tmp_path / "hls" / "master.m3u8").read_text()


def test_transcode_of_320x240_clip_writes_one_rendition_without_upscaling(
    media: Media, tmp_path: Path
) -> None:
    done = run(media, media.small(), tmp_path)
    assert [(o.quality, o.width, o.height) for o in done.result.outputs if o.kind == "video"] == [
        ("low", 320, 240)
    ]
    video = video_stream(media, tmp_path / "low.mp4")
    assert (video["width"], video["height"]) == (320, 240)
    assert sorted(p.name for p in tmp_path.glob("*.mp4")) == ["low.mp4"]


def test_transcode_of_odd_sized_clip_writes_even_sizes(media: Media, tmp_path: Path) -> None:
    run(media, media.odd(), tmp_path, qualities=("medium", "low"))
    video = video_stream(media, tmp_path / "low.mp4")
    assert (video["width"], video["height"], video["pix_fmt"]) == (640, 358, "yuv420p")
    gif = video_stream(media, tmp_path / "preview.gif")
    assert (gif["width"], gif["height"]) == (320, 180)


@pytest.mark.parametrize("clip", ["corrupt", "truncated"])
def test_transcode_of_broken_file_is_invalid_media(media: Media, tmp_path: Path, clip: str) -> None:
    source = getattr(media, clip)()
    with pytest.raises(InvalidMedia):
        run(media, source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_transcode_of_hls_playlist_disguised_as_mp4_fails_without_reading_the_target(
    media: Media, tmp_path: Path
) -> None:
    disguised = media.disguised_playlist(secret=media.landscape())
    with pytest.raises((InvalidMedia, TranscodeFailed)):
        run(media, disguised, tmp_path / "out")
    assert not (tmp_path / "out").exists()


async def test_encode_command_on_disguised_playlist_fails_on_the_whitelist(
    media: Media, tmp_path: Path
) -> None:
    # Defence in depth: ffmpeg itself refuses the playlist even if ffprobe were skipped.
    disguised = media.disguised_playlist(secret=media.landscape())
    info = await probe(media.binaries.ffprobe, media.landscape())
    argv = build_command(media.binaries.ffmpeg, disguised, tmp_path, info, plan_ladder(info, ALL))
    with pytest.raises(TranscodeFailed) as caught:
        await run_ffmpeg(argv, duration=info.duration, timeout=60)
    assert "Format not on whitelist" in " ".join(caught.value.details)
    assert files_in(tmp_path) == []


@pytest.mark.parametrize(
    "config",
    [TranscodeConfig(max_duration_s=2), TranscodeConfig(max_pixels=1280 * 720 - 1)],
    ids=["duration", "pixels"],
)
def test_transcode_over_a_limit_is_invalid_media(
    media: Media, tmp_path: Path, config: TranscodeConfig
) -> None:
    with pytest.raises(InvalidMedia, match="limit"):
        asyncio.run(transcode(media.binaries, config, media.landscape(), tmp_path / "out", ALL))
    assert not (tmp_path / "out").exists()


async def storyboard_frames(media: Media, layout: Layout) -> MediaInfo:
    """The small clip's storyboard frames in `layout.frames`, as its decode writes them."""
    source = media.small()
    info = await probe(media.binaries.ffprobe, source)
    plan = storyboard_of(info)
    assert plan is not None
    layout.frames.mkdir(parents=True)
    graph = f"[0:v:0]{frames_filter(plan, info.fps)}[story]"
    media.ffmpeg(
        "-i", str(source), "-filter_complex", graph, *frames_output_args(layout.frames, 0, None)
    )
    return info


@pytest.mark.parametrize("job_left_s", [600.0, -1.0])
async def test_storyboard_tiling_out_of_time_leaves_no_storyboard_rather_than_failing(
    media: Media, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, job_left_s: float
) -> None:
    """Out of its own budget (a run killed midway), or with the job's deadline already past."""
    layout = Layout(tmp_path)
    info = await storyboard_frames(media, layout)
    monkeypatch.setattr(outputs, "TILING_BUDGET_S", 0.001)
    limit = outputs.TimeLimit(asyncio.get_running_loop().time() + job_left_s)
    assert await outputs.make_storyboard(media.binaries.ffmpeg, layout, info, limit) is None
    assert not layout.frames.exists() and not layout.storyboard_dir.exists()
    assert ffmpeg_children() == []


async def test_storyboard_of_no_frames_removes_their_dir_and_warns_only_where_some_were_due(
    media: Media, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    layout = Layout(tmp_path)
    info = await probe(media.binaries.ffprobe, media.small())
    limit = outputs.TimeLimit(asyncio.get_running_loop().time() + 600)
    for source, warned in [(info, True), (replace(info, duration=0.0), False)]:
        caplog.clear()
        layout.frames.mkdir()
        assert await outputs.make_storyboard(media.binaries.ffmpeg, layout, source, limit) is None
        assert not layout.frames.exists() and not layout.storyboard_dir.exists()
        assert ("no storyboard frames were written" in caplog.text) is warned


async def test_transcode_past_its_time_limit_raises_and_kills_ffmpeg(
    media: Media, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outputs, "TIMEOUT_GRACE_S", 0.05)
    config = TranscodeConfig(timeout_factor=0.01)
    with pytest.raises(TranscodeTimedOut, match=r"^timed out$"):
        await transcode(media.binaries, config, media.landscape(), tmp_path, ALL)
    assert ffmpeg_children() == []


async def test_transcode_when_cancelled_kills_ffmpeg(media: Media, tmp_path: Path) -> None:
    task = asyncio.create_task(transcode(media.binaries, CONFIG, media.landscape(), tmp_path, ALL))
    for _ in range(1000):
        if ffmpeg_children(names=("ffmpeg",)):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("ffmpeg never started")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ffmpeg_children() == []
