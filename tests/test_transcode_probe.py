"""ffprobe of untrusted uploads: parsing (pure), limits, and real ffprobe on generated clips."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.media import Media, media_library
from videoforge.config import TranscodeConfig
from videoforge.transcode.probe import InvalidMedia, MediaInfo, check_limits, parse_probe, probe

MP4 = "mov,mp4,m4a,3gp,3g2,mj2"


@pytest.fixture
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    return media_library(tmp_path_factory)


def probe_json(*streams: dict[str, Any], duration: str = "10.0", format_name: str = MP4) -> Any:
    return {"format": {"format_name": format_name, "duration": duration}, "streams": list(streams)}


VIDEO = {
    "codec_type": "video",
    "codec_name": "h264",
    "width": 1920,
    "height": 1080,
    "avg_frame_rate": "30000/1001",
    "r_frame_rate": "30000/1001",
}
AUDIO = {"codec_type": "audio", "codec_name": "aac"}


def test_parse_probe_reads_size_codecs_rate_and_audio() -> None:
    info = parse_probe(probe_json(VIDEO, AUDIO))
    assert (info.width, info.height, info.rotation) == (1920, 1080, 0)
    assert (info.video_codec, info.audio_codec, info.has_audio) == ("h264", "aac", True)
    assert info.fps == pytest.approx(29.97, abs=0.01)
    assert info.duration == 10.0


def test_parse_probe_with_display_matrix_swaps_to_displayed_size() -> None:
    rotated = {**VIDEO, "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]}
    info = parse_probe(probe_json(rotated))
    assert (info.width, info.height, info.rotation) == (1080, 1920, 270)


def test_parse_probe_with_legacy_rotate_tag_swaps_to_displayed_size() -> None:
    info = parse_probe(probe_json({**VIDEO, "tags": {"rotate": "90"}}))
    assert (info.width, info.height, info.rotation) == (1080, 1920, 90)


def test_parse_probe_with_non_square_pixels_gives_displayed_width() -> None:
    anamorphic = {**VIDEO, "width": 720, "height": 576, "sample_aspect_ratio": "64:45"}
    info = parse_probe(probe_json(anamorphic))
    assert (info.width, info.height) == (1024, 576)


def test_parse_probe_without_audio_says_so() -> None:
    info = parse_probe(probe_json(VIDEO))
    assert (info.has_audio, info.audio_codec) == (False, None)


def test_parse_probe_with_cover_art_only_is_invalid() -> None:
    cover = {**VIDEO, "codec_name": "mjpeg", "disposition": {"attached_pic": 1}}
    with pytest.raises(InvalidMedia, match="No video stream"):
        parse_probe(probe_json(AUDIO, cover))


@pytest.mark.parametrize("duration", ["0.000000", "N/A", "nan", "-3"])
def test_parse_probe_without_a_duration_is_invalid(duration: str) -> None:
    with pytest.raises(InvalidMedia, match="duration"):
        parse_probe(probe_json(VIDEO, duration=duration))


@pytest.mark.parametrize("format_name", ["hls", "concat", "image2", "png_pipe", ""])
def test_parse_probe_with_a_format_outside_the_whitelist_is_invalid(format_name: str) -> None:
    with pytest.raises(InvalidMedia, match="container format"):
        parse_probe(probe_json(VIDEO, format_name=format_name))


def test_invalid_media_is_a_permanent_client_error() -> None:
    assert InvalidMedia.status == 400
    assert InvalidMedia.retryable is False


def info_of(duration: float, width: int, height: int) -> MediaInfo:
    return parse_probe(
        probe_json({**VIDEO, "width": width, "height": height}, duration=f"{duration}")
    )


def test_check_limits_over_the_duration_limit_is_invalid() -> None:
    with pytest.raises(InvalidMedia, match="limit is 60 s"):
        check_limits(info_of(61, 640, 360), TranscodeConfig(max_duration_s=60))


def test_check_limits_over_the_pixel_limit_is_invalid() -> None:
    with pytest.raises(InvalidMedia, match="pixels"):
        check_limits(info_of(10, 3840, 2160), TranscodeConfig(max_pixels=1920 * 1080))


def test_check_limits_within_limits_passes() -> None:
    check_limits(
        info_of(60, 1920, 1080), TranscodeConfig(max_duration_s=60, max_pixels=1920 * 1080)
    )


async def test_probe_of_landscape_clip_describes_it(media: Media) -> None:
    info = await probe(media.binaries.ffprobe, media.landscape())
    assert (info.width, info.height, info.rotation) == (1280, 720, 0)
    assert (info.video_codec, info.audio_codec, info.has_audio) == ("h264", "aac", True)
    assert info.fps == 25
    assert info.duration == pytest.approx(3.0, abs=0.1)
    assert info.format_name == MP4


async def test_probe_of_rotated_clip_gives_displayed_size(media: Media) -> None:
    info = await probe(media.binaries.ffprobe, media.rotated())
    assert (info.width, info.height) == (480, 854)
    assert info.rotation in (90, 270)


async def test_probe_of_clip_without_audio_says_so(media: Media) -> None:
    info = await probe(media.binaries.ffprobe, media.no_audio())
    assert (info.has_audio, info.audio_codec) == (False, None)


async def test_probe_of_random_bytes_is_invalid_without_leaking_paths(media: Media) -> None:
    with pytest.raises(InvalidMedia) as caught:
        await probe(media.binaries.ffprobe, media.corrupt())
    assert str(media.directory) not in caught.value.message


async def test_probe_of_truncated_mp4_is_invalid(media: Media) -> None:
    with pytest.raises(InvalidMedia):
        await probe(media.binaries.ffprobe, media.truncated())


async def test_probe_of_hls_playlist_disguised_as_mp4_is_invalid(media: Media) -> None:
    disguised = media.disguised_playlist(secret=media.landscape())
    with pytest.raises(InvalidMedia, match="Unsupported container format: hls"):
        await probe(media.binaries.ffprobe, disguised)


def test_ffprobe_without_whitelist_does_read_the_disguised_playlist(media: Media) -> None:
    # The attack is real in this ffmpeg build: only the format whitelist stops it.
    disguised = media.disguised_playlist(secret=media.landscape())
    argv = [str(media.binaries.ffprobe), "-v", "error", "-protocol_whitelist", "file"]
    argv += ["-show_entries", "format=format_name,duration", "-of", "csv=p=0"]
    done = subprocess.run([*argv, str(disguised)], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip().startswith("hls,3.0")


# --- real footage: HDR colour, interlacing, transport streams -----------------------------------


def test_parse_probe_reads_colour_tags_and_field_order() -> None:
    hdr = {
        **VIDEO,
        "color_transfer": "smpte2084",
        "color_primaries": "bt2020",
        "color_space": "bt2020nc",
        "field_order": "tt",
    }
    info = parse_probe(probe_json(hdr))
    assert (info.color_transfer, info.color_primaries, info.color_space) == (
        "smpte2084",
        "bt2020",
        "bt2020nc",
    )
    assert (info.field_order, info.is_hdr, info.is_interlaced) == ("tt", True, True)


def test_parse_probe_without_colour_tags_is_sdr_and_progressive() -> None:
    untagged = {**VIDEO, "color_transfer": "unknown", "field_order": "progressive"}
    info = parse_probe(probe_json(untagged))
    assert (info.color_transfer, info.color_primaries, info.color_space) == (None, None, None)
    assert (info.is_hdr, info.is_interlaced) == (False, False)


@pytest.mark.parametrize(
    ("transfer", "hdr"),
    [("smpte2084", True), ("arib-std-b67", True), ("bt709", False), ("bt2020-10", False)],
)
def test_parse_probe_is_hdr_for_pq_and_hlg_only(transfer: str, hdr: bool) -> None:
    assert parse_probe(probe_json({**VIDEO, "color_transfer": transfer})).is_hdr is hdr


@pytest.mark.parametrize("transfer", ["smpte2084", "arib-std-b67"])
async def test_probe_of_hdr_clip_reads_its_transfer_and_primaries(
    media: Media, transfer: str
) -> None:
    info = await probe(media.binaries.ffprobe, media.hdr(transfer))
    assert (info.video_codec, info.color_transfer, info.color_primaries) == (
        "hevc",
        transfer,
        "bt2020",
    )
    assert info.is_hdr


async def test_probe_of_interlaced_clip_reads_its_field_order(media: Media) -> None:
    info = await probe(media.binaries.ffprobe, media.interlaced())
    assert (info.field_order, info.is_interlaced) == ("tt", True)
    assert not (await probe(media.binaries.ffprobe, media.landscape())).is_interlaced


@pytest.mark.parametrize("suffix", [".ts", ".mts", ".m2ts"])
async def test_probe_of_transport_stream_describes_it(media: Media, suffix: str) -> None:
    info = await probe(media.binaries.ffprobe, media.transport_stream(suffix))
    assert info.format_name == "mpegts"
    assert (info.width, info.height, info.video_codec, info.audio_codec) == (
        640,
        360,
        "h264",
        "aac",
    )
    assert info.duration == pytest.approx(2.0, abs=0.2)


async def test_probe_of_hls_playlist_disguised_as_ts_is_invalid(media: Media) -> None:
    disguised = media.disguised_transport_stream(secret=media.landscape())
    with pytest.raises(InvalidMedia, match="Unsupported container format: hls"):
        await probe(media.binaries.ffprobe, disguised)
