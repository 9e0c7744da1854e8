"""ffmpeg argv building (pure, milliseconds): one process, safe inputs, aligned keyframes."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from videoforge.transcode.command import (
    Layout,
    build_command,
    build_hls_command,
    build_tile_command,
    filter_graph,
    gif_start,
    thumbnail_time,
)
from videoforge.transcode.ladder import plan_ladder
from videoforge.transcode.probe import MediaInfo
from videoforge.transcode.storyboard import plan_storyboard

FFMPEG = Path("/opt/ffmpeg/ffmpeg")
SOURCE = Path("/work/job-1/input")
OUT = Path("/work/job-1/out")
INFO = MediaInfo(
    duration=100.0,
    width=1920,
    height=1080,
    rotation=0,
    video_codec="h264",
    audio_codec="aac",
    has_audio=True,
    fps=30.0,
    format_name="mov,mp4,m4a,3gp,3g2,mj2",
    bit_rate=8_000_000,
)
LADDER = plan_ladder(INFO, ["high", "medium", "low"])


def command(info: MediaInfo = INFO, threads: int | None = None) -> list[str]:
    return build_command(
        FFMPEG, SOURCE, OUT, info, plan_ladder(info, ["high", "medium", "low"]), threads=threads
    )


def values_after(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == option]


def test_build_command_is_one_ffmpeg_process_writing_every_output() -> None:
    argv = command()
    assert argv[0] == str(FFMPEG)
    assert argv.count("-filter_complex") == 1
    outputs = [arg for arg in argv if arg.startswith(f"file:{OUT}")]
    assert [Path(o.removeprefix("file:")).relative_to(OUT).as_posix() for o in outputs] == [
        "high.mp4",
        "medium.mp4",
        "low.mp4",
        "thumbnail.jpg",
        "preview.gif",
        "preview.webp",
        "storyboard-frames/frame-%05d.jpg",
    ]


def test_build_command_opens_its_one_input_with_whitelists() -> None:
    argv = command()
    inputs = [i for i, arg in enumerate(argv) if arg == "-i"]
    assert [argv[i + 1] for i in inputs] == [f"file:{SOURCE}"]
    for i in inputs:
        options = argv[i - 4 : i]
        assert options[0] == "-format_whitelist"
        assert set(options[1].split(",")) >= {"mov", "mp4", "matroska", "webm"}
        assert not set(options[1].split(",")) & {"hls", "concat", "image2", "dash"}
        assert options[2:] == ["-protocol_whitelist", "file"]


def test_build_command_never_uses_unsafe_or_lossy_options() -> None:
    argv = command()
    assert "-safe" not in argv
    assert "fast_bilinear" not in " ".join(argv)
    assert "ultrafast" not in argv


def test_build_command_splits_one_decode_into_renditions_thumbnail_gif_and_storyboard() -> None:
    graph = filter_graph(INFO, LADDER)
    assert "[0:v:0]split=6[r0][r1][r2][t][g][s]" in graph
    for size in ("scale=1920:1080", "scale=1280:720", "scale=854:480"):
        assert size in graph
    renditions = [part for part in graph.split(";") if part.startswith("[r")]
    assert not any("fps=" in part for part in renditions)


def test_build_command_encodes_h264_with_crf_capped_by_maxrate() -> None:
    argv = command()
    assert values_after(argv, "-c:v")[:3] == ["libx264"] * 3
    assert values_after(argv, "-preset") == ["veryfast"] * 3
    assert values_after(argv, "-crf") == ["23"] * 3
    assert values_after(argv, "-maxrate") == ["6000k", "3000k", "1200k"]
    assert values_after(argv, "-bufsize") == ["12000k", "6000k", "2400k"]
    assert values_after(argv, "-movflags") == ["+faststart"] * 3


def test_build_command_fixes_the_gop_for_aligned_keyframes() -> None:
    argv = command()
    assert values_after(argv, "-sc_threshold") == ["0"] * 3
    assert values_after(argv, "-g") == ["60"] * 3
    assert values_after(argv, "-keyint_min") == ["60"] * 3
    assert values_after(argv, "-force_key_frames") == ["expr:gte(t,n_forced*2)"] * 3


def test_build_command_maps_and_encodes_audio_when_the_source_has_it() -> None:
    argv = command()
    assert values_after(argv, "-map").count("0:a:0") == 3
    assert values_after(argv, "-c:a") == ["aac"] * 3
    assert values_after(argv, "-b:a") == ["128k"] * 3


def test_build_command_without_source_audio_maps_none() -> None:
    argv = command(replace(INFO, has_audio=False, audio_codec=None))
    assert not [m for m in values_after(argv, "-map") if ":a" in m]
    assert "-c:a" not in argv
    assert argv.count("-an") == 3


def test_build_command_with_120_fps_source_caps_the_renditions_at_60() -> None:
    graph = filter_graph(replace(INFO, fps=120.0), LADDER)
    assert graph.split("[1:v:0]")[0].count("fps=60,") == 3


def test_build_command_trims_gif_and_thumbnail_inside_the_graph() -> None:
    argv = command()
    # Never -t as an output option around palettegen: the trim is in the graph.
    assert "-t" not in argv and "-ss" not in argv
    graph = filter_graph(INFO, LADDER)
    assert "[g]trim=start=10.000:duration=3," in graph
    assert "fps=12,scale=320:180:flags=lanczos" in graph
    assert "palettegen" in graph and "paletteuse" in graph
    assert "[t]trim=start=10.000,trim=end_frame=1" in graph
    assert "scale=1920:1080,setsar=1[thumb]" in graph


def test_build_command_with_threads_limits_every_stage() -> None:
    argv = command(threads=2)
    assert values_after(argv, "-filter_complex_threads") == ["2"]
    # decoder, 3 renditions, jpeg, gif, storyboard frames
    assert values_after(argv, "-threads") == ["2"] * 7


def test_build_command_reports_progress_on_stdout() -> None:
    argv = command()
    assert values_after(argv, "-progress") == ["pipe:1"]
    assert "-nostats" in argv and "-nostdin" in argv


@pytest.mark.parametrize(
    ("duration", "start"), [(2.0, 0.0), (3.0, 0.0), (5.0, 0.5), (10.0, 1.0), (100.0, 10.0)]
)
def test_gif_start_is_near_ten_percent_yet_leaves_a_full_gif(duration: float, start: float) -> None:
    assert gif_start(duration) == pytest.approx(start)


def test_thumbnail_time_is_ten_percent_of_the_duration() -> None:
    assert thumbnail_time(100.0) == pytest.approx(10.0)


def test_build_hls_command_copies_streams_into_fmp4_segments() -> None:
    argv = build_hls_command(FFMPEG, OUT, LADDER, has_audio=True)
    assert "libx264" not in argv and "-filter_complex" not in argv
    assert values_after(argv, "-c") == ["copy"] * 3
    assert values_after(argv, "-f") == ["hls"] * 3
    assert values_after(argv, "-hls_time") == ["4"] * 3
    assert values_after(argv, "-hls_segment_type") == ["fmp4"] * 3
    assert values_after(argv, "-hls_fmp4_init_filename") == ["init.mp4"] * 3
    assert values_after(argv, "-hls_segment_filename") == [
        f"file:{OUT}/hls/{q}/seg_%05d.m4s" for q in ("high", "medium", "low")
    ]
    assert values_after(argv, "-i") == [f"file:{OUT}/{q}.mp4" for q in ("high", "medium", "low")]
    assert set(values_after(argv, "-format_whitelist")) == {"mov,mp4,m4a,3gp,3g2,mj2"}
    assert argv[-1] == f"file:{OUT}/hls/low/index.m3u8"


def test_build_command_writes_the_gif_frames_as_a_full_colour_animated_webp_too() -> None:
    argv = command()
    # Split before the palette: the WebP's frames keep every colour.
    assert "setsar=1,split=3[ga][gb][webp];[ga]palettegen" in filter_graph(INFO, LADDER)
    webp = argv[argv.index("[webp]") - 1 : argv.index("[webp]") + 12]
    assert webp == [
        "-map", "[webp]", "-c:v", "libwebp_anim", "-lossless", "0", "-q:v", "60", "-loop", "0",
        "-f", "webp", f"file:{OUT}/preview.webp",
    ]  # fmt: skip


def test_build_command_writes_storyboard_frames_as_small_jpegs_numbered_from_zero() -> None:
    argv = command()
    # Each cue's first frame at or after its start, as a chunk picks them; the first at 0 s.
    assert (
        "[s]select='gte(t+0.000000,(0+selected_n)*1.000000-0.016667)*lt((0+selected_n),100)',"
        "scale=160:90,setsar=1[story]"
    ) in filter_graph(INFO, LADDER)
    assert "tile=" not in filter_graph(INFO, LADDER)  # a sprite would hold progress back
    frames = argv[argv.index("[story]") - 1 :]
    assert frames == [
        "-map", "[story]", "-c:v", "mjpeg", "-q:v", "3", "-fps_mode", "passthrough",
        "-start_number", "0", "-f", "image2", f"file:{OUT}/storyboard-frames/frame-%05d.jpg",
    ]  # fmt: skip


def test_build_command_told_to_leave_out_the_storyboard_has_no_frames_branch_nor_output() -> None:
    argv = build_command(FFMPEG, SOURCE, OUT, INFO, LADDER, storyboard=False)
    graph = filter_graph(INFO, LADDER, storyboard=False)
    assert "[story]" not in argv and "[s]" not in graph and "[story]" not in graph
    assert graph in argv and "split=5[r0][r1][r2][t][g]" in graph
    assert not any("storyboard-frames" in arg for arg in argv)


def test_build_tile_command_reads_only_our_frames_through_image2() -> None:
    argv = build_tile_command(FFMPEG, Layout(OUT), plan_storyboard(100, 1920, 1080))
    assert values_after(argv, "-format_whitelist") == ["image2"]
    assert values_after(argv, "-protocol_whitelist") == ["file"]
    assert values_after(argv, "-i") == [f"file:{OUT}/storyboard-frames/frame-%05d.jpg"]
    assert values_after(argv, "-vf") == ["tile=10x10"]
    assert values_after(argv, "-q:v") == ["4"]
    assert values_after(argv, "-start_number") == ["0", "0"]
    assert argv[-1] == f"file:{OUT}/storyboard/storyboard-%03d.jpg"


def test_build_hls_command_without_audio_maps_video_only() -> None:
    argv = build_hls_command(FFMPEG, OUT, LADDER, has_audio=False)
    assert values_after(argv, "-map") == ["0:v:0", "1:v:0", "2:v:0"]


# --- real footage: SDR unchanged, HDR tone-mapped once, interlaced deinterlaced first ----------

SDR_GRAPH = (
    "[0:v:0]split=6[r0][r1][r2][t][g][s];"
    "[r0]scale=1920:1080,setsar=1,format=yuv420p[v_high];"
    "[r1]scale=1280:720,setsar=1,format=yuv420p[v_medium];"
    "[r2]scale=854:480,setsar=1,format=yuv420p[v_low];"
    "[t]trim=start=10.000,trim=end_frame=1,setpts=PTS-STARTPTS,scale=1920:1080,setsar=1[thumb];"
    "[g]trim=start=10.000:duration=3,setpts=PTS-STARTPTS,fps=12,scale=320:180:flags=lanczos,"
    "setsar=1,split=3[ga][gb][webp];[ga]palettegen=stats_mode=single[palette];"
    "[gb][palette]paletteuse=new=1[gif];"
    "[s]select='gte(t+0.000000,(0+selected_n)*1.000000-0.016667)*lt((0+selected_n),100)',"
    "scale=160:90,setsar=1[story]"
)
# sha256 of the NUL-joined argv of `command(threads=2)` for an SDR source: HDR and interlaced
# handling must leave it byte for byte the same. Changed once, deliberately, for the storyboard
# and the WebP preview: the split got a sixth branch `[s]` (the storyboard's frames), the GIF's
# split a third (`[webp]`), and the argv their two outputs; without those the argv still hashes
# to the pin before (12230ca30c4b239c...). Changed again for the storyboard's frames alone: the
# first at each cue's start (`select`, as chunks pick them), not `fps`'s last of each interval.
SDR_ARGV_SHA256 = "9dc6b356f770edb682c1a69d5f2c1b1d6a004cf06a86b97dec3efde18d1f8cc0"
PQ = replace(
    INFO,
    video_codec="hevc",
    color_transfer="smpte2084",
    color_primaries="bt2020",
    color_space="bt2020nc",
)
HLG = replace(PQ, color_transfer="arib-std-b67")
TAGGED_BT709 = ["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"]


def test_filter_graph_of_sdr_source_is_unchanged() -> None:
    sdr = replace(INFO, color_transfer="bt709", color_primaries="bt709", color_space="bt709")
    assert filter_graph(INFO, LADDER) == SDR_GRAPH
    assert filter_graph(sdr, LADDER) == SDR_GRAPH
    assert filter_graph(replace(INFO, field_order="progressive"), LADDER) == SDR_GRAPH


def test_build_command_of_sdr_source_is_unchanged() -> None:
    argv = command(threads=2)
    assert hashlib.sha256("\0".join(argv).encode()).hexdigest() == SDR_ARGV_SHA256
    assert "-color_trc" not in argv


@pytest.mark.parametrize(("info", "transfer"), [(PQ, "smpte2084"), (HLG, "arib-std-b67")])
def test_filter_graph_of_hdr_source_tone_maps_once_before_the_split(
    info: MediaInfo, transfer: str
) -> None:
    graph = filter_graph(info, LADDER)
    head, _, branches = graph.partition("split=6")
    assert head == (
        f"[0:v:0]zscale=tin={transfer}:pin=bt2020:min=bt2020nc:t=linear:p=bt2020:npl=100,"
        "format=gbrpf32le,zscale=p=bt709,tonemap=tonemap=mobius:desat=0,"
        "zscale=t=bt709:m=bt709:r=tv,format=yuv420p,"
    )
    assert "zscale" not in branches and "tonemap" not in branches
    assert branches == SDR_GRAPH.partition("split=6")[2]


def test_filter_graph_of_hdr_source_without_primaries_assumes_bt2020() -> None:
    graph = filter_graph(replace(PQ, color_primaries=None, color_space=None), LADDER)
    assert graph.startswith(
        "[0:v:0]zscale=tin=smpte2084:pin=bt2020:min=bt2020nc:t=linear:p=bt2020:"
    )


@pytest.mark.parametrize("info", [PQ, HLG])
def test_build_command_of_hdr_source_tags_every_rendition_bt709(info: MediaInfo) -> None:
    argv = command(info)
    outputs = [i for i, arg in enumerate(argv) if arg.startswith(f"file:{OUT}/")]
    tagged = [argv[o - len(TAGGED_BT709) - 4 : o - 4] for o in outputs[:3]]
    assert tagged == [TAGGED_BT709] * 3
    assert values_after(argv, "-color_range") == ["tv"] * 3


@pytest.mark.parametrize("field_order", ["tt", "bb", "tb", "bt"])
def test_filter_graph_of_interlaced_source_deinterlaces_before_scaling(field_order: str) -> None:
    graph = filter_graph(replace(INFO, field_order=field_order), LADDER)
    assert graph.startswith("[0:v:0]bwdif=mode=send_frame,split=6")
    assert graph.count("bwdif") == 1


@pytest.mark.parametrize("field_order", [None, "progressive", "unknown"])
def test_filter_graph_of_progressive_source_has_no_deinterlacer(field_order: str | None) -> None:
    assert "bwdif" not in filter_graph(replace(INFO, field_order=field_order), LADDER)


def test_filter_graph_of_interlaced_hdr_source_deinterlaces_before_the_tone_map() -> None:
    graph = filter_graph(replace(PQ, field_order="bb"), LADDER)
    assert graph.startswith("[0:v:0]bwdif=mode=send_frame,zscale=tin=smpte2084:")
