"""The HLS master playlist we write (pure file work, milliseconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from videoforge.transcode.ladder import Rung
from videoforge.transcode.master_playlist import (
    avc1_codec,
    segment_sizes,
    variant_stats,
    write_master_playlist,
)
from videoforge.transcode.runner import TranscodeFailed

# The start of an init segment's avcC box: size, type, version 1, High profile, level 3.1.
AVCC = b"\x00\x00\x00\x2aavcC\x01\x64\x00\x1f\xff\xe1"


def make_variant(directory: Path, segments: list[tuple[float, int]]) -> None:
    directory.mkdir(parents=True)
    (directory / "init.mp4").write_bytes(b"\x00" * 100 + AVCC)
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", '#EXT-X-MAP:URI="init.mp4"']
    for number, (seconds, size) in enumerate(segments, start=1):
        name = f"seg_{number:05d}.m4s"
        (directory / name).write_bytes(b"\x00" * size)
        lines += [f"#EXTINF:{seconds:.6f},", name]
    (directory / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n")


def test_avc1_codec_reads_profile_constraints_and_level() -> None:
    assert avc1_codec(b"ftyp....moov" + AVCC) == "avc1.64001f"


def test_avc1_codec_without_avcc_box_fails() -> None:
    with pytest.raises(TranscodeFailed):
        avc1_codec(b"ftyp....moov")


def test_variant_stats_gives_peak_and_average_bitrate(tmp_path: Path) -> None:
    make_variant(tmp_path / "low", [(4.0, 500_000), (4.0, 1_000_000), (2.0, 100_000)])
    stats = variant_stats(segment_sizes(tmp_path / "low" / "index.m3u8"), "low")
    assert stats.peak_bitrate == 2_000_000
    assert stats.average_bitrate == 1_280_000


def test_variant_stats_without_segments_fails(tmp_path: Path) -> None:
    make_variant(tmp_path / "low", [])
    with pytest.raises(TranscodeFailed):
        variant_stats(segment_sizes(tmp_path / "low" / "index.m3u8"), "low")


def test_write_master_playlist_lists_every_rung_with_relative_uris(tmp_path: Path) -> None:
    ladder = [
        Rung("medium", 1280, 720, 3_000_000, 6_000_000, 25.0),
        Rung("low", 854, 480, 1_200_000, 2_400_000, 25.0),
    ]
    make_variant(tmp_path / "medium", [(4.0, 1_000_000)])
    make_variant(tmp_path / "low", [(4.0, 400_000)])
    master = write_master_playlist(tmp_path, ladder, has_audio=True)
    assert master == tmp_path / "master.m3u8"
    assert master.read_text().splitlines() == [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-STREAM-INF:BANDWIDTH=2000000,AVERAGE-BANDWIDTH=2000000,RESOLUTION=1280x720,"
        'FRAME-RATE=25.000,CODECS="avc1.64001f,mp4a.40.2"',
        "medium/index.m3u8",
        "#EXT-X-STREAM-INF:BANDWIDTH=800000,AVERAGE-BANDWIDTH=800000,RESOLUTION=854x480,"
        'FRAME-RATE=25.000,CODECS="avc1.64001f,mp4a.40.2"',
        "low/index.m3u8",
    ]


def test_write_master_playlist_without_audio_lists_video_codec_only(tmp_path: Path) -> None:
    make_variant(tmp_path / "low", [(4.0, 400_000)])
    ladder = [Rung("low", 854, 480, 1_200_000, 2_400_000, 25.0)]
    text = write_master_playlist(tmp_path, ladder, has_audio=False).read_text()
    assert 'CODECS="avc1.64001f"' in text
