"""The HLS of a chunked job (pure): where each chunk's frames go, the playlists written from what
the chunks made (EVENT while they encode, VOD at the end, a discontinuity where an encoder
configuration changes), and which files they name. Real packaging is in test_transcode_chunked."""

from __future__ import annotations

import pytest

from videoforge.transcode.chunk_hls import (
    ChunkVariant,
    Segment,
    chunk_offset,
    configuration_signature,
    first_segment_number,
    hls_playlists,
    media_playlist,
    segments_until,
    stored_files,
)
from videoforge.transcode.ladder import Rung

FPS = 30000 / 1001


def variant(chunk: int, count: int, signature: str = "same", last: float = 4.004) -> ChunkVariant:
    first = chunk * 2 + 1
    segments = [Segment(f"seg_{first + i:05d}.m4s", 4.004, 1000) for i in range(count - 1)]
    segments.append(Segment(f"seg_{first + count - 1:05d}.m4s", last, 500))
    return ChunkVariant(f"init_{chunk:05d}.mp4", signature, "avc1.64001f", tuple(segments))


def test_a_chunk_starts_at_its_segment_number() -> None:
    assert [first_segment_number(start) for start in (0.0, 8.0, 60.0)] == [1, 3, 16]


@pytest.mark.parametrize(
    ("start", "first_dts", "decoded_first"),
    [
        (0.0, -2002 / 30000, 0.0),  # the first chunk: one pass's own shift
        (8.0, -2002 / 30000, 240 / FPS),  # source frame 240 is the first at or after 8 s
        (24.0, -1012 / 30000, 720 / FPS),  # whatever its own first decode time is
    ],
)
def test_a_chunk_is_moved_onto_the_one_pass_frame_grid(
    start: float, first_dts: float, decoded_first: float
) -> None:
    # One pass decodes frame n at n / fps (and shows it its reorder delay later): so must the
    # chunk's first frame be decoded.
    assert first_dts + chunk_offset(start, FPS, first_dts) == pytest.approx(decoded_first, abs=1e-6)


def test_an_event_playlist_has_no_end_and_a_vod_one_ends() -> None:
    chunks = [variant(0, 2), variant(1, 2)]
    growing = media_playlist(chunks, ended=False)
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in growing and "#EXT-X-ENDLIST" not in growing
    ended = media_playlist(chunks, ended=True)
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in ended and ended.rstrip().endswith("#EXT-X-ENDLIST")
    # The same segments in the same order: a player of the growing one carries on.
    assert growing.splitlines()[6:] == ended.splitlines()[6:-1]


def test_chunks_of_one_encoder_configuration_share_the_first_init_segment() -> None:
    text = media_playlist([variant(0, 2), variant(1, 2), variant(2, 1, last=2.0)], ended=True)
    assert text.count("#EXT-X-MAP:") == 1 and '#EXT-X-MAP:URI="init_00000.mp4"' in text
    assert "#EXT-X-DISCONTINUITY" not in text
    assert [line for line in text.splitlines() if line.startswith("seg_")] == [
        f"seg_{n:05d}.m4s" for n in range(1, 6)
    ]
    assert "#EXT-X-TARGETDURATION:4" in text


def test_a_changed_encoder_configuration_is_a_discontinuity_with_the_next_init() -> None:
    chunks = [variant(0, 2), variant(1, 2, signature="other"), variant(2, 2, signature="other")]
    lines = media_playlist(chunks, ended=True).splitlines()
    at = lines.index("#EXT-X-DISCONTINUITY")
    assert lines[at + 1] == '#EXT-X-MAP:URI="init_00001.mp4"'
    assert lines[at + 3] == "seg_00003.m4s"
    assert lines.count("#EXT-X-DISCONTINUITY") == 1
    assert stored_files(chunks)[:4] == [
        "init_00000.mp4",
        "seg_00001.m4s",
        "seg_00002.m4s",
        "init_00001.mp4",
    ]
    assert "init_00002.mp4" not in stored_files(chunks)


def test_the_audio_goes_as_far_as_the_video_is_ready() -> None:
    audio = ChunkVariant("init.mp4", "aac", "", tuple(Segment(f"a{i}", 4.0, 10) for i in range(6)))
    assert [s.name for s in segments_until(audio, 8.008).segments] == ["a0", "a1", "a2"]
    assert [s.name for s in segments_until(audio, 8.0).segments] == ["a0", "a1"]
    assert segments_until(audio, 100.0) == audio


def test_the_master_names_the_audio_rendition_and_counts_its_bit_rate() -> None:
    rung = Rung("low", 854, 480, 1_200_000, 2_400_000, FPS)
    audio = ChunkVariant("init.mp4", "aac", "", (Segment("seg_00001.m4s", 4.0, 64_000),))
    playlists = hls_playlists([rung], [{"low": variant(0, 1)}], audio, ended=False)
    assert set(playlists) == {"low/index.m3u8", "audio/index.m3u8", "master.m3u8"}
    master = playlists["master.m3u8"]
    assert '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio"' in master and 'AUDIO="audio"' in master
    # 500 bytes over 4.004 s of video, and 64 kB over 4 s of audio.
    assert "AVERAGE-BANDWIDTH=128999," in master
    assert 'CODECS="avc1.64001f,mp4a.40.2"' in master


def test_the_signature_ignores_what_differs_between_chunks_of_one_configuration() -> None:
    avcc = b"\x00\x00\x00\x0eavcC\x01\x64\x00\x1f\xff\xe1"
    one = b"\x00\x00\x00\x10ftypisom" + avcc + b"btrt\x00\x00\x01\x00"
    two = b"\x00\x00\x00\x10ftypisom" + avcc + b"btrt\x00\x00\x09\x99"
    assert configuration_signature(one) == configuration_signature(two)
    other = one.replace(b"\x64\x00\x1f", b"\x4d\x00\x1e")
    assert configuration_signature(other) != configuration_signature(one)
