"""Split-and-stitch transcoding: the chunk plan and argv (pure), then one real chunked run.

The run is a 40 s clip at 29.97 fps (chunk seams fall between frames) with a continuous tone,
cut into 8 s chunks (5 of them), at the 480p rung only; every test inspects that one run.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.media import Media, ffmpeg_children, media_library, top_level_boxes
from tests.storyboard_support import check_storyboard
from videoforge.config import TranscodeConfig
from videoforge.transcode import chunked as chunked_module
from videoforge.transcode import outputs
from videoforge.transcode.chunked import CHUNKS_DIR
from videoforge.transcode.chunks import (
    STITCH_FORMATS,
    Chunk,
    ChunkLayout,
    build_audio_command,
    build_chunk_command,
    build_stills_command,
    build_stitch_command,
    chunking_applies,
    concat_list,
    plan_chunks,
)
from videoforge.transcode.command import HLS_SEGMENT_S, build_command
from videoforge.transcode.ladder import plan_ladder
from videoforge.transcode.pipeline import TranscodeResult, transcode
from videoforge.transcode.probe import MediaInfo, probe
from videoforge.transcode.runner import TranscodeTimedOut, child_env, run_ffmpeg

CHUNKED = TranscodeConfig(chunk_seconds=8)
QUALITIES = ("low",)
SECONDS = 40
FPS = 30000 / 1001
FFMPEG = Path("/usr/bin/ffmpeg")


def info_of(**changes: object) -> MediaInfo:
    fields: dict[str, object] = {
        "duration": 40.0,
        "width": 1920,
        "height": 1080,
        "rotation": 0,
        "video_codec": "h264",
        "audio_codec": "aac",
        "has_audio": True,
        "fps": 30.0,
        "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
        "bit_rate": None,
    }
    return MediaInfo(**{**fields, **changes})  # type: ignore[arg-type]


# The chunk plan


def test_plan_of_a_whole_number_of_chunks_has_equal_chunks_the_last_to_the_end() -> None:
    assert plan_chunks(40.0, 8) == [
        Chunk(0, 0.0, 8.0, False),
        Chunk(1, 8.0, 8.0, False),
        Chunk(2, 16.0, 8.0, False),
        Chunk(3, 24.0, 8.0, False),
        Chunk(4, 32.0, 8.0, True),
    ]


def test_plan_gives_a_last_chunk_of_a_quarter_or_more_its_own_chunk() -> None:
    chunks = plan_chunks(195.0, 60)
    assert [(c.start, c.duration, c.to_end) for c in chunks] == [
        (0.0, 60.0, False),
        (60.0, 60.0, False),
        (120.0, 60.0, False),
        (180.0, 15.0, True),
    ]
    assert [(c.start, c.duration) for c in plan_chunks(43.0, 8)][-1] == (40.0, 3.0)


@pytest.mark.parametrize("duration", [40.0001, 40.04, 41.9, 121.0, 134.9, 186.0])
def test_plan_folds_a_sliver_at_the_end_into_the_chunk_before(duration: float) -> None:
    chunk_seconds = 8 if duration < 100 else 60
    chunks = plan_chunks(duration, chunk_seconds)
    last = chunks[-1]
    assert last.to_end and last.duration > chunk_seconds
    assert last.start + last.duration == pytest.approx(duration)


@pytest.mark.parametrize(("duration", "chunk_seconds"), [(16.5, 8), (3600.0, 60), (97.3, 12)])
def test_plan_covers_the_duration_from_seams_on_chunk_multiples(
    duration: float, chunk_seconds: int
) -> None:
    chunks = plan_chunks(duration, chunk_seconds)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(c.start == c.index * chunk_seconds for c in chunks)
    assert all(c.start % HLS_SEGMENT_S == 0 for c in chunks)
    assert sum(c.duration for c in chunks) == pytest.approx(duration)
    assert [c.to_end for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert all(c.duration >= chunk_seconds * 0.25 for c in chunks)


@pytest.mark.parametrize(("duration", "chunk_seconds"), [(0.0, 8), (-1.0, 8), (40.0, 0)])
def test_plan_of_nothing_is_refused(duration: float, chunk_seconds: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        plan_chunks(duration, chunk_seconds)


@pytest.mark.parametrize(
    ("duration", "chunk_seconds", "applies"),
    [(40.0, 8, True), (16.01, 8, True), (16.0, 8, False), (3.0, 8, False), (3600.0, 0, False)],
)
def test_chunking_applies_only_past_two_chunks_and_when_on(
    duration: float, chunk_seconds: int, applies: bool
) -> None:
    assert chunking_applies(duration, chunk_seconds) is applies


def test_chunk_names_are_safe_relative_paths_for_the_concat_demuxer() -> None:
    chunks = plan_chunks(40.0, 8)
    assert concat_list(chunks[:2], "low") == (
        "ffconcat version 1.0\nfile 00000/low.mp4\nfile 00001/low.mp4\n"
    )


# The argv of each step


def test_chunk_command_seeks_accurately_to_its_range_and_encodes_every_rung_video_only() -> None:
    info = info_of()
    ladder = plan_ladder(info, ("high", "medium", "low"))
    layout = ChunkLayout(Path("/w/chunks"))
    argv = build_chunk_command(
        FFMPEG, Path("/w/in"), info, ladder, Chunk(2, 16.0, 8.0, False), layout
    )
    # -ss and -t before -i: input options, so the decode starts near 16 s and stops at 24 s.
    assert argv[argv.index("-ss") : argv.index("-i") + 2][:4] == ["-ss", "16.000", "-t", "8.000"]
    assert argv[argv.index("-i") + 1] == "file:/w/in"
    assert (
        argv[argv.index("-format_whitelist") + 1]
        == "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,flv"
    )
    graph = argv[argv.index("-filter_complex") + 1]
    assert graph.startswith("[0:v:0]split=4[r0][r1][r2][s];")
    assert "[r2]scale=854:480,setsar=1,format=yuv420p[v_low]" in graph
    assert argv.count("-an") == 3 and "0:a:0" not in argv and "aac" not in argv
    assert argv.count("-sc_threshold") == 3 and argv.count("-fps_mode") == 4
    assert argv.count("expr:gte(t,n_forced*2)") == 3
    outputs = [a for a in argv if a.startswith("file:/w/chunks")]
    assert outputs == [f"file:/w/chunks/00002/{q}.mp4" for q in ("high", "medium", "low")] + [
        "file:/w/chunks/00002/storyboard/frame-%05d.jpg"
    ]


def test_chunk_command_writes_the_storyboard_frames_of_its_range_by_global_number() -> None:
    info = info_of()  # 40 s: a frame a second
    layout = ChunkLayout(Path("/w/chunks"))
    argv = build_chunk_command(
        FFMPEG, Path("/w/in"), info, plan_ladder(info, ["low"]), Chunk(2, 16.0, 8.0, False), layout
    )
    graph = argv[argv.index("-filter_complex") + 1]
    # Frames 16..23; the chunk starts on frame 16's time, so its first decoded frame is due at
    # once and needs no spare before it.
    assert "[s]select='gte(t+16.000000,(16+selected_n)*1.000000-" in graph
    assert "*lt((16+selected_n),24)',scale=160:90,setsar=1[story]" in graph
    assert argv[argv.index("-start_number") + 1] == "16" and argv.count("-start_number") == 1


def test_last_chunk_reads_to_the_end_of_the_source() -> None:
    info = info_of()
    layout = ChunkLayout(Path("/w/chunks"))
    argv = build_chunk_command(
        FFMPEG, Path("/w/in"), info, plan_ladder(info, ["low"]), Chunk(4, 32.0, 8.0, True), layout
    )
    assert "-t" not in argv[: argv.index("-i")]


def test_chunk_command_applies_the_source_filters_of_one_pass() -> None:
    info = info_of(fps=120.0, field_order="tt", color_transfer="smpte2084")
    layout = ChunkLayout(Path("/w/chunks"))
    argv = build_chunk_command(
        FFMPEG, Path("/w/in"), info, plan_ladder(info, ["low"]), Chunk(0, 0.0, 8.0, False), layout
    )
    graph = argv[argv.index("-filter_complex") + 1]
    assert graph.startswith("[0:v:0]bwdif=mode=send_frame,zscale=tin=smpte2084")
    assert "[r0]fps=60,scale=" in graph
    assert argv[argv.index("-colorspace") + 1] == "bt709"


def test_audio_command_encodes_the_whole_files_audio_once_as_aac() -> None:
    argv = build_audio_command(FFMPEG, Path("/w/in"), ChunkLayout(Path("/w/chunks")))
    assert "-ss" not in argv and "-t" not in argv
    assert argv[argv.index("-map") : argv.index("-map") + 9] == [
        "-map", "0:a:0", "-vn", "-c:a", "aac", "-b:a", "128k", "-ac", "2",
    ]  # fmt: skip
    assert argv[-1] == "file:/w/chunks/audio.m4a"


def test_stills_command_seeks_the_source_to_the_thumbnail_and_gif_times() -> None:
    info = info_of(duration=100.0)
    argv = build_stills_command(
        FFMPEG, Path("/w/in"), Path("/w/out"), info, plan_ladder(info, ["low"])
    )
    inputs = [i for i, a in enumerate(argv) if a == "-i"]
    assert len(inputs) == 2
    # Both seeks are input options: the thumbnail at 10%, the GIF's 3 s from there.
    assert argv[inputs[0] - 8 : inputs[0] - 4] == ["-ss", "10.000", "-t", "3"]
    assert argv[inputs[1] - 8 : inputs[1] - 4] == ["-ss", "10.000", "-t", "3"]
    assert argv[-1] == "file:/w/out/preview.webp"
    assert "file:/w/out/thumbnail.jpg" in argv and "file:/w/out/preview.gif" in argv


def test_stitch_command_copies_concat_video_and_the_audio_in_safe_mode() -> None:
    info = info_of()
    ladder = plan_ladder(info, ("medium", "low"))
    argv = build_stitch_command(
        FFMPEG, Path("/w/out"), ChunkLayout(Path("/w/chunks")), ladder, has_audio=True
    )
    assert "-safe" not in argv  # relative, portable names only: the demuxer's safe mode holds
    assert STITCH_FORMATS == "concat,mov,mp4,m4a,3gp,3g2,mj2"
    joined = " ".join(argv)
    concat = "-f concat -format_whitelist concat,mov,mp4,m4a,3gp,3g2,mj2 -protocol_whitelist file"
    assert f"{concat} -i file:/w/chunks/medium.ffconcat" in joined
    assert "-i file:/w/chunks/audio.m4a" in joined
    assert "-map 0:v:0 -map 2:a:0 -c copy" in joined and "-map 1:v:0 -map 2:a:0 -c copy" in joined
    assert "libx264" not in argv and "aac" not in argv
    assert argv.count("+faststart") == 2 and argv[-1] == "file:/w/out/low.mp4"


def test_stitch_command_of_a_silent_source_maps_video_only() -> None:
    ladder = plan_ladder(info_of(), ("low",))
    argv = build_stitch_command(
        FFMPEG, Path("/w/out"), ChunkLayout(Path("/w/chunks")), ladder, has_audio=False
    )
    assert "audio.m4a" not in " ".join(argv) and "1:a:0" not in argv


# One real chunked run


@dataclass
class Run:
    result: TranscodeResult
    outdir: Path
    progress: list[float]
    frames: list[set[int]] = field(default_factory=list)  # each chunk's storyboard frames


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    return media_library(tmp_path_factory)


@pytest.fixture(scope="module")
def source(media: Media) -> Path:
    """40 s of moving pattern at 29.97 fps, with a 440 Hz tone from start to end."""
    path = media.directory / "chunked_source.mp4"
    if not path.exists():
        media.ffmpeg(
            *("-f", "lavfi", "-i", f"testsrc2=size=854x480:rate=30000/1001:duration={SECONDS}"),
            *("-f", "lavfi", "-i", f"sine=frequency=440:duration={SECONDS}"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
            *("-c:a", "aac", "-b:a", "96k", str(path)),
        )
    return path


def transcode_once(media: Media, source: Path, outdir: Path, config: TranscodeConfig) -> Run:
    progress: list[float] = []
    result = asyncio.run(
        transcode(media.binaries, config, source, outdir, QUALITIES, progress.append)
    )
    return Run(result, outdir, progress)


@pytest.fixture(scope="module")
def chunked(media: Media, source: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    frames: list[set[int]] = []
    own_frames = chunked_module.own_frames

    def recording(*args: Any) -> dict[int, Path]:
        found = own_frames(*args)
        frames.append(set(found))
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(chunked_module, "own_frames", recording)
        done = transcode_once(media, source, tmp_path_factory.mktemp("chunked"), CHUNKED)
    done.frames = frames
    return done


@pytest.fixture(scope="module")
def one_pass(media: Media, source: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return transcode_once(media, source, tmp_path_factory.mktemp("one_pass"), TranscodeConfig())


def relative_files(directory: Path) -> set[str]:
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}


def stream_durations(media: Media, path: Path) -> dict[str, float]:
    streams = media.ffprobe(path, "-show_entries", "stream=codec_type,duration")["streams"]
    return {s["codec_type"]: float(s["duration"]) for s in streams}


def ffmpeg_stderr(media: Media, *args: str) -> str:
    argv = [str(media.binaries.ffmpeg), "-hide_banner", "-nostdin", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=child_env())
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def outputs_to_play(run: Run) -> list[Path]:
    return [run.outdir / "low.mp4", run.outdir / "hls" / "master.m3u8"]


def test_chunked_run_writes_one_pass_files_with_audio_of_its_own_and_no_chunk_leftovers(
    chunked: Run, one_pass: Run
) -> None:
    files = relative_files(chunked.outdir)
    audio = {name for name in files if name.startswith("hls/audio/")}
    # HLS packaged chunk by chunk: the first chunk's init segment serves them all, and the
    # audio is a rendition of its own (the chunks are video only).
    expected = relative_files(one_pass.outdir) - {"hls/low/init.mp4"} | {"hls/low/init_00000.mp4"}
    assert files - audio == expected
    playlist = (chunked.outdir / "hls" / "audio" / "index.m3u8").read_text()
    segments = {f"hls/audio/{name}" for name in re.findall(r"^seg_\d{5}\.m4s$", playlist, re.M)}
    assert len(segments) >= SECONDS // HLS_SEGMENT_S
    assert audio == {"hls/audio/index.m3u8", "hls/audio/init.mp4"} | segments
    assert not (chunked.outdir / CHUNKS_DIR).exists()
    assert [
        (o.kind, o.quality, o.path.relative_to(chunked.outdir)) for o in chunked.result.outputs
    ] == [(o.kind, o.quality, o.path.relative_to(one_pass.outdir)) for o in one_pass.result.outputs]
    boxes = top_level_boxes(chunked.outdir / "low.mp4")
    assert boxes.index("moov") < boxes.index("mdat")  # faststart


def test_chunked_rendition_has_the_sources_duration_and_frames(
    chunked: Run, media: Media, source: Path
) -> None:
    rendition = chunked.outdir / "low.mp4"
    expected = stream_durations(media, source)["video"]
    assert stream_durations(media, rendition)["video"] == pytest.approx(expected, abs=1 / FPS)
    assert abs(media.frame_count(rendition) - media.frame_count(source)) <= 1


def test_chunked_hls_package_has_the_sources_duration_and_frames(
    chunked: Run, media: Media, source: Path
) -> None:
    variant = chunked.outdir / "hls" / "low" / "index.m3u8"
    segments = [float(x) for x in re.findall(r"#EXTINF:([\d.]+),", variant.read_text())]
    assert sum(segments) == pytest.approx(stream_durations(media, source)["video"], abs=1 / FPS)
    # Every seam is a segment bound: all segments but the last are one segment long.
    assert all(s == pytest.approx(HLS_SEGMENT_S, abs=1 / FPS) for s in segments[:-1])
    assert abs(media.frame_count(variant) - media.frame_count(source)) <= 1


def test_chunked_hls_is_one_vod_playlist_per_rung_and_the_audio_under_one_master(
    chunked: Run,
) -> None:
    variant = (chunked.outdir / "hls" / "low" / "index.m3u8").read_text()
    assert re.findall(r"#EXT-X-MAP:URI=\"([^\"]+)\"", variant) == ["init_00000.mp4"]
    assert "#EXT-X-DISCONTINUITY" not in variant
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in variant and variant.rstrip().endswith("#EXT-X-ENDLIST")
    master = (chunked.outdir / "hls" / "master.m3u8").read_text()
    assert '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio"' in master
    assert 'URI="audio/index.m3u8"' in master and 'AUDIO="audio"' in master
    assert "low/index.m3u8" in master


def test_chunked_keyframes_fall_on_segment_bounds_as_in_one_pass(
    chunked: Run, one_pass: Run, media: Media
) -> None:
    keyframes = media.keyframe_times(chunked.outdir / "low.mp4")
    frame = 1 / FPS + 0.01  # keyframe_times rounds to 10 ms
    for bound in range(0, SECONDS, HLS_SEGMENT_S):
        # At 29.97 fps the bounds fall between frames: a keyframe on a frame next to each.
        assert any(abs(k - bound) < frame for k in keyframes), bound
    theirs = media.keyframe_times(one_pass.outdir / "low.mp4")
    assert len(keyframes) == len(theirs)
    assert all(abs(ours - one) < frame for ours, one in zip(keyframes, theirs, strict=True))


def silences(media: Media, path: Path) -> list[tuple[float, float]]:
    """(start, duration) of every stretch under -40 dB of at least 15 ms."""
    stderr = ffmpeg_stderr(
        media, "-i", str(path), "-map", "0:a:0", "-af", "silencedetect=n=-40dB:d=0.015",
        "-f", "null", "-",
    )  # fmt: skip
    starts = [float(x) for x in re.findall(r"silence_start: ([\d.]+)", stderr)]
    lengths = [float(x) for x in re.findall(r"silence_duration: ([\d.]+)", stderr)]
    return list(zip(starts, lengths, strict=True))


@pytest.mark.parametrize("output", [0, 1], ids=["mp4", "hls"])
def test_chunked_outputs_have_no_audio_gap_at_any_seam(
    chunked: Run, one_pass: Run, media: Media, output: int
) -> None:
    found = silences(media, outputs_to_play(chunked)[output])
    # ffmpeg's HLS demuxer plays the AAC encoder's priming (1024 samples at 0 s) that the MP4's
    # edit list hides: the same in one pass, and no seam.
    assert found == silences(media, outputs_to_play(one_pass)[output])
    assert [(start, length) for start, length in found if start > 0 or length > 0.024] == []


def test_chunked_audio_lasts_as_long_as_the_video(chunked: Run, media: Media) -> None:
    durations = stream_durations(media, chunked.outdir / "low.mp4")
    # In sync to the end: AAC ends within one audio frame (1024 samples) of the video.
    assert durations["audio"] == pytest.approx(durations["video"], abs=1024 / 44100 + 1 / FPS)


@pytest.mark.parametrize("output", [0, 1], ids=["mp4", "hls"])
def test_chunked_outputs_decode_end_to_end_without_errors(
    chunked: Run, media: Media, output: int
) -> None:
    path = outputs_to_play(chunked)[output]
    stderr = ffmpeg_stderr(media, "-v", "error", "-i", str(path), "-f", "null", "-")
    assert stderr.strip() == ""


def test_chunked_stills_match_one_pass(chunked: Run, one_pass: Run, media: Media) -> None:
    for name in ("thumbnail.jpg", "preview.gif"):
        ours, theirs = media.streams(chunked.outdir / name), media.streams(one_pass.outdir / name)
        assert [(s["width"], s["height"]) for s in ours] == [
            (s["width"], s["height"]) for s in theirs
        ]
    assert media.frame_count(chunked.outdir / "preview.gif") == media.frame_count(
        one_pass.outdir / "preview.gif"
    )


def test_chunked_storyboard_is_one_pass_storyboard_from_every_chunks_frames(
    chunked: Run, one_pass: Run, media: Media
) -> None:
    duration = chunked.result.info.duration
    ours = check_storyboard(media, chunked.outdir / "storyboard", duration)
    assert ours == check_storyboard(media, one_pass.outdir / "storyboard", duration)
    assert len(ours) == SECONDS
    # Each chunk wrote exactly the frames of its 8 s (none filled in at a seam).
    assert chunked.frames == [set(range(start, start + 8)) for start in range(0, SECONDS, 8)]


def test_one_pass_storyboard_holds_no_progress_report_back(one_pass: Run) -> None:
    # A tiling output would write nothing before its first sprite's 100th frame (here, of
    # 40 frames: the end), and ffmpeg reports nothing before every output has begun.
    assert one_pass.progress[0] < 0.5
    assert len([p for p in one_pass.progress if p < 0.5]) >= 2


def test_chunked_progress_rises_to_one_only_at_the_end(chunked: Run) -> None:
    progress = chunked.progress
    assert progress == sorted(progress) and len(set(progress)) == len(progress)
    assert progress[-1] == 1.0 and progress.count(1.0) == 1
    assert len(progress) >= 5


def vmaf(media: Media, distorted: Path, reference: Path) -> float:
    stderr = ffmpeg_stderr(
        media, "-i", str(distorted), "-i", str(reference),
        "-lavfi", "[0:v][1:v]libvmaf=n_threads=2:n_subsample=8", "-f", "null", "-",
    )  # fmt: skip
    found = re.search(r"VMAF score: ([\d.]+)", stderr)
    assert found, stderr[-2000:]
    return float(found.group(1))


def test_chunked_rendition_is_no_worse_than_one_pass_by_vmaf(
    chunked: Run, one_pass: Run, media: Media, source: Path
) -> None:
    ours = vmaf(media, chunked.outdir / "low.mp4", source)
    theirs = vmaf(media, one_pass.outdir / "low.mp4", source)
    print(f"VMAF against the source at 480p: chunked {ours:.2f}, one pass {theirs:.2f}")
    assert ours >= theirs - 0.5


# Dispatch, time limit and cancellation


async def test_source_of_two_chunks_or_less_runs_the_one_pass_command(
    media: Media, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argvs: list[list[str]] = []

    async def recording(argv: list[str], **kwargs: object) -> None:
        argvs.append(list(argv))
        await run_ffmpeg(argv, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(outputs, "run_ffmpeg", recording)
    source = media.landscape()
    info = await probe(media.binaries.ffprobe, source)
    config = TranscodeConfig(chunk_seconds=4)  # the clip is 3 s: under 2 x 4 s
    await transcode(media.binaries, config, source, tmp_path, QUALITIES, info=info)
    ladder = plan_ladder(info, QUALITIES)
    assert argvs[0] == build_command(media.binaries.ffmpeg, source, tmp_path, info, ladder)
    # The encode, the HLS remux and the storyboard's tiling.
    assert len(argvs) == 3 and not (tmp_path / CHUNKS_DIR).exists()


async def test_chunked_run_past_its_time_limit_raises_and_kills_ffmpeg(
    media: Media, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outputs, "TIMEOUT_GRACE_S", 0.05)
    config = TranscodeConfig(chunk_seconds=8, timeout_factor=0.01)
    with pytest.raises(TranscodeTimedOut, match=r"^timed out$"):
        await transcode(media.binaries, config, source, tmp_path, QUALITIES)
    assert ffmpeg_children() == []


async def test_chunked_run_when_cancelled_kills_ffmpeg(
    media: Media, source: Path, tmp_path: Path
) -> None:
    task = asyncio.create_task(transcode(media.binaries, CHUNKED, source, tmp_path, QUALITIES))
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
