"""Real footage through the whole pipeline: phone HDR (PQ, HLG), camcorder and broadcast
transport streams, interlaced video. Clips are generated at test time; outputs checked with
ffprobe and ffmpeg's own measuring filters (psnr, idet)."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest

from tests.media import Media, media_library, psnr
from videoforge.config import TranscodeConfig
from videoforge.transcode.pipeline import TranscodeResult, transcode
from videoforge.transcode.probe import InvalidMedia
from videoforge.transcode.runner import TranscodeFailed

ALL = ("high", "medium", "low")
CONFIG = TranscodeConfig()
HDR_TRANSFERS = ["smpte2084", "arib-std-b67"]
# Against the SDR picture an HDR clip was mastered from: a tone-mapped rendition scores about
# 23 dB, the same HDR pixels merely squeezed into 8 bits 13.6 dB (PQ) and 15.7 dB (HLG).
TONE_MAPPED_DB = 20.0


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    return media_library(tmp_path_factory)


def run(media: Media, source: Path, outdir: Path) -> TranscodeResult:
    return asyncio.run(transcode(media.binaries, CONFIG, source, outdir, ALL))


@pytest.fixture(scope="module")
def sdr_outputs(media: Media, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SDR reference itself through the pipeline: what the HDR outputs should look like."""
    outdir = tmp_path_factory.mktemp("sdr")
    run(media, media.sdr_reference(), outdir)
    return outdir


@pytest.fixture(scope="module", params=HDR_TRANSFERS)
def hdr_outputs(
    request: pytest.FixtureRequest, media: Media, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    outdir = tmp_path_factory.mktemp(f"hdr-{request.param}")
    run(media, media.hdr(request.param), outdir)
    return outdir


def video_stream(media: Media, path: Path) -> dict[str, object]:
    return next(s for s in media.streams(path) if s["codec_type"] == "video")


def test_transcode_of_hdr_clip_tags_the_renditions_bt709(hdr_outputs: Path, media: Media) -> None:
    video = video_stream(media, hdr_outputs / "low.mp4")
    assert (video["codec_name"], video["pix_fmt"]) == ("h264", "yuv420p")
    colour = (video["color_transfer"], video["color_primaries"], video["color_space"])
    assert colour == ("bt709", "bt709", "bt709")
    assert video["color_range"] == "tv"


def test_transcode_of_hdr_clip_tone_maps_the_renditions(hdr_outputs: Path, media: Media) -> None:
    assert psnr(media, hdr_outputs / "low.mp4", media.sdr_reference()) > TONE_MAPPED_DB


def test_transcode_of_hdr_clip_tone_maps_the_thumbnail_and_gif(
    hdr_outputs: Path, sdr_outputs: Path, media: Media
) -> None:
    for name in ("thumbnail.jpg", "preview.gif"):
        assert psnr(media, hdr_outputs / name, sdr_outputs / name) > TONE_MAPPED_DB, name


def test_transcode_of_hdr_clip_without_primaries_tags_tone_maps_it(
    media: Media, tmp_path: Path
) -> None:
    source = media.hdr_without_primaries()
    assert video_stream(media, source).get("color_primaries", "unknown") == "unknown"
    run(media, source, tmp_path)
    assert video_stream(media, tmp_path / "low.mp4")["color_primaries"] == "bt709"
    assert psnr(media, tmp_path / "low.mp4", media.sdr_reference()) > TONE_MAPPED_DB


def test_transcode_of_sdr_clip_keeps_its_pixels_untouched(sdr_outputs: Path, media: Media) -> None:
    # The same picture as the reference, less only the H.264 encode: no tone map on the way.
    assert psnr(media, sdr_outputs / "low.mp4", media.sdr_reference()) > 35


@pytest.mark.parametrize("suffix", [".ts", ".mts", ".m2ts"])
def test_transcode_of_transport_stream_writes_every_output(
    media: Media, tmp_path: Path, suffix: str
) -> None:
    result = run(media, media.transport_stream(suffix), tmp_path)
    assert result.info.format_name == "mpegts"
    assert [(o.kind, o.quality) for o in result.outputs] == [
        ("video", "low"),
        ("thumbnail", None),
        ("gif", None),
        ("webp", None),
        ("hls", None),
        ("storyboard", None),
        ("sprite", None),
    ]
    streams = {s["codec_type"]: s for s in media.streams(tmp_path / "low.mp4")}
    assert (streams["video"]["codec_name"], streams["audio"]["codec_name"]) == ("h264", "aac")
    assert media.frame_count(tmp_path / "low.mp4") >= 50  # all 2 s of it


def test_transcode_of_hls_playlist_disguised_as_ts_fails_without_reading_the_target(
    media: Media, tmp_path: Path
) -> None:
    disguised = media.disguised_transport_stream(secret=media.landscape())
    with pytest.raises((InvalidMedia, TranscodeFailed)):
        run(media, disguised, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def combed_frames(media: Media, path: Path) -> tuple[int, int]:
    """(interlaced, progressive) frames as ffmpeg's `idet` sees them in the picture itself."""
    argv = [str(media.binaries.ffmpeg), "-hide_banner", "-nostdin", "-i", str(path)]
    argv += ["-vf", "idet", "-an", "-f", "null", "-"]
    done = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60)
    found = re.search(
        r"Multi frame detection: TFF:\s*(\d+) BFF:\s*(\d+) Progressive:\s*(\d+)", done.stderr
    )
    assert found, done.stderr
    tff, bff, progressive = (int(n) for n in found.groups())
    return tff + bff, progressive


def test_transcode_of_interlaced_clip_writes_progressive_renditions(
    media: Media, tmp_path: Path
) -> None:
    source = media.interlaced()
    assert combed_frames(media, source)[0] > 40  # the test clip really is combed
    run(media, source, tmp_path)
    rendition = tmp_path / "low.mp4"
    video = video_stream(media, rendition)
    assert video["field_order"] == "progressive"
    assert video["avg_frame_rate"] == "25/1"  # one frame per frame, not one per field
    # Before deinterlacing every frame of the rendition was combed (50 of 50).
    interlaced, progressive = combed_frames(media, rendition)
    assert progressive > 40 and interlaced < 10
