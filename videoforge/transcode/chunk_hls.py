"""HLS of a chunked transcode, packaged chunk by chunk so it can be played while chunks encode.

Each chunk's video of each rung is packaged on its own, by stream copy, into fMP4 segments with
their global numbers (`seg_00016.m4s` is 60-64 s whichever chunk made it) and their global
timestamps: `frag_discont` makes each fragment's decode time the packet's own, and each chunk is
shifted so that its frames fall where one pass puts them (`chunk_offset`). The
audio is packaged once, from the whole file's AAC, as a rendition of its own.

Each rung's playlist is then written here from what the chunks made (`ChunkVariant`): one init
segment while the chunks' encoder configuration (the avcC box) is the same, else a
discontinuity and the next chunk's init. While chunks are still encoding the playlist is an EVENT
playlist of the chunks ready from the start; at the end it becomes VOD with its end tag.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from videoforge.storage.layout import MASTER_PLAYLIST
from videoforge.transcode.command import (
    HLS_SEGMENT_S,
    RENDITION_FORMATS,
    VARIANT_PLAYLIST,
    file_arg,
    global_args,
)
from videoforge.transcode.ladder import Rung
from videoforge.transcode.master_playlist import (
    Variant,
    VariantStats,
    avc1_codec,
    master_playlist,
    variant_stats,
    with_audio_bitrate,
)
from videoforge.transcode.probe import input_args
from videoforge.transcode.runner import TranscodeFailed, run_capture

CHUNK_PLAYLIST = "chunk.m3u8"  # ffmpeg's playlist of one chunk's segments (read, never served)
SEGMENT_PATTERN = "seg_%05d.m4s"
AUDIO_DIR = "audio"


@dataclass(frozen=True)
class Segment:
    name: str
    duration: float
    size: int


@dataclass(frozen=True)
class ChunkVariant:
    """One chunk's HLS of one rung: its init segment and its media segments."""

    init: str
    signature: str  # the encoder configuration: equal signatures share one init segment
    codec: str  # RFC 6381, for the master playlist
    segments: tuple[Segment, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChunkVariant:
        segments = tuple(Segment(**segment) for segment in data["segments"])
        return cls(data["init"], data["signature"], data["codec"], segments)


ChunkHls = dict[str, ChunkVariant]  # quality -> one chunk's HLS of that rung


def init_name(chunk_name: str) -> str:
    return f"init_{chunk_name}.mp4"


def first_segment_number(start: float) -> int:
    """The number of a chunk's first segment: chunks start on segment bounds."""
    return round(start / HLS_SEGMENT_S) + 1


async def first_packet(ffprobe: Path, video: Path) -> tuple[float, float]:
    """The presentation and decode time of an encoded video's first packet, in seconds."""
    argv = [str(ffprobe), "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1"]
    argv += ["-show_entries", "packet=pts_time,dts_time", "-of", "csv=p=0"]
    argv += input_args(video, RENDITION_FORMATS)
    _, stdout, stderr = await run_capture(argv, timeout=30)
    try:
        pts, dts = (float(field) for field in stdout.strip().split(",")[:2])
    except ValueError:
        why = f"cannot read the first packet of {video.name}: {stderr[-200:]!r}"
        raise TranscodeFailed(why) from None
    return pts, dts


def chunk_offset(start: float, fps: float, first_dts: float) -> float:
    """What to add to a chunk's timestamps to put its frames where one pass puts them.

    One pass shows frame n at n / fps, shifted by its encoder's reorder delay so that no decode
    time is negative (the first frame is decoded at 0). A chunk's first frame is the first of the
    source at or after `start`, which its own timestamps put on its own grid from `start`; this
    moves it onto the one-pass grid (and its decode times with it)."""
    first = math.ceil(start * fps - 1e-6) / fps if fps > 0 else start
    return first - first_dts


def build_chunk_hls_command(
    ffmpeg: Path, video: Path, outdir: Path, chunk_name: str, start: float, offset: float
) -> list[str]:
    """One chunk's video of one rung as fMP4 segments at their global numbers and times
    (`offset`: `chunk_offset`)."""
    # The chunk's own timestamps as they are (`-copyts`: not moved to start at 0), then offset.
    argv = [*global_args(ffmpeg, None), "-copyts", *input_args(video, RENDITION_FORMATS)]
    argv += ["-map", "0:v:0", "-c", "copy", "-output_ts_offset", f"{offset:.6f}"]
    argv += _hls_args(init_name(chunk_name), first_segment_number(start))
    # Each fragment's decode time is its packets' own, not counted from this file's start.
    argv += ["-hls_segment_options", "movflags=+frag_discont"]
    return [*argv, *_segment_files(outdir)]


def build_audio_hls_command(ffmpeg: Path, audio: Path, outdir: Path) -> list[str]:
    """The whole file's AAC as the audio rendition's segments."""
    argv = global_args(ffmpeg, None) + input_args(audio, RENDITION_FORMATS)
    argv += ["-map", "0:a:0", "-c", "copy", *_hls_args("init.mp4", 1)]
    return [*argv, *_segment_files(outdir)]


def _segment_files(outdir: Path) -> list[str]:
    return [
        "-hls_segment_filename",
        file_arg(outdir / SEGMENT_PATTERN),
        file_arg(outdir / CHUNK_PLAYLIST),
    ]


def _hls_args(init: str, start_number: int) -> list[str]:
    return [
        *("-f", "hls", "-hls_time", str(HLS_SEGMENT_S), "-hls_playlist_type", "vod"),
        *("-hls_segment_type", "fmp4", "-hls_flags", "independent_segments"),
        *("-hls_fmp4_init_filename", init, "-start_number", str(start_number)),
    ]


def describe_variant(outdir: Path) -> ChunkVariant:
    """What `build_chunk_hls_command` (or the audio's) made in `outdir`."""
    segments, init = read_segments(outdir / CHUNK_PLAYLIST)
    init_bytes = (outdir / init).read_bytes()
    codec = avc1_codec(init_bytes) if b"avcC" in init_bytes else ""
    return ChunkVariant(init, configuration_signature(init_bytes), codec, tuple(segments))


def read_segments(playlist: Path) -> tuple[list[Segment], str]:
    """The segments of a playlist ffmpeg wrote, with their sizes, and its init segment."""
    segments, init, duration = [], "", None
    for line in playlist.read_text().splitlines():
        if line.startswith("#EXT-X-MAP:URI="):
            init = line.split('"')[1]
        elif line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",", 1)[0])
        elif line and not line.startswith("#") and duration is not None:
            segments.append(Segment(line, duration, (playlist.parent / line).stat().st_size))
            duration = None
    if not segments or not init:
        raise TranscodeFailed(f"HLS packaging of {playlist.parent.name} made no segments")
    return segments, init


def configuration_signature(init: bytes) -> str:
    """A digest of the track's decoder configuration (avcC for H.264, else the sample
    description): what must match for segments to share an init segment. Bit rates and edit
    lists, which differ from chunk to chunk, are left out."""
    for box in (b"avcC", b"esds", b"stsd"):
        at = init.find(box)
        if at >= 4:
            size = int.from_bytes(init[at - 4 : at], "big")
            return hashlib.sha256(init[at - 4 : at - 4 + size]).hexdigest()
    return hashlib.sha256(init).hexdigest()


def media_playlist(chunks: Sequence[ChunkVariant], *, ended: bool) -> str:
    """A rung's playlist of these chunks' segments: EVENT while more are to come, else VOD."""
    durations = [s.duration for chunk in chunks for s in chunk.segments]
    target = max([HLS_SEGMENT_S, *(math.ceil(d - 0.5) for d in durations)])
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}"]
    lines += ["#EXT-X-MEDIA-SEQUENCE:1", f"#EXT-X-PLAYLIST-TYPE:{'VOD' if ended else 'EVENT'}"]
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    signature = None
    for chunk in chunks:
        if chunk.signature != signature:
            if signature is not None:
                lines.append("#EXT-X-DISCONTINUITY")
            lines.append(f'#EXT-X-MAP:URI="{chunk.init}"')
            signature = chunk.signature
        for segment in chunk.segments:
            lines += [f"#EXTINF:{segment.duration:.6f},", segment.name]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def segments_until(variant: ChunkVariant, seconds: float) -> ChunkVariant:
    """The audio's segments that start before `seconds`: as far as the video is ready."""
    kept, at = [], 0.0
    for segment in variant.segments:
        if at >= seconds - 1e-6:
            break
        kept.append(segment)
        at += segment.duration
    return ChunkVariant(variant.init, variant.signature, variant.codec, tuple(kept))


def stored_files(chunks: Sequence[ChunkVariant]) -> list[str]:
    """The init and media segments the playlist of these chunks names, in its order."""
    names: list[str] = []
    signature = None
    for chunk in chunks:
        if chunk.signature != signature:
            names.append(chunk.init)
            signature = chunk.signature
        names += [segment.name for segment in chunk.segments]
    return names


def hls_playlists(
    ladder: Sequence[Rung],
    chunks: Sequence[ChunkHls],
    audio: ChunkVariant | None,
    *,
    ended: bool,
) -> dict[str, str]:
    """Every playlist of the package of these chunks (the first ones, while more are to come),
    by path under the HLS directory: each rung's, the audio's (as far as the video goes), and
    the master, which names them all."""
    playlists, variants = {}, []
    seconds = sum(s.duration for chunk in chunks for s in chunk[ladder[0].quality].segments)
    audio_part = None
    if audio is not None:
        audio_part = audio if ended else segments_until(audio, seconds)
        playlists[f"{AUDIO_DIR}/{VARIANT_PLAYLIST}"] = media_playlist([audio_part], ended=ended)
        audio_stats = _stats(audio_part.segments, AUDIO_DIR)
    for rung in ladder:
        parts = [chunk[rung.quality] for chunk in chunks]
        playlists[f"{rung.quality}/{VARIANT_PLAYLIST}"] = media_playlist(parts, ended=ended)
        stats = _stats([s for part in parts for s in part.segments], rung.quality)
        if audio_part is not None:
            stats = with_audio_bitrate(stats, audio_stats)
        variants.append(Variant(rung, stats, parts[0].codec))
    rendition = None if audio is None else f"{AUDIO_DIR}/{VARIANT_PLAYLIST}"
    playlists[MASTER_PLAYLIST] = master_playlist(
        variants, with_audio=audio is not None, audio_rendition=rendition
    )
    return playlists


def _stats(segments: Sequence[Segment], name: str) -> VariantStats:
    return variant_stats([(s.duration, s.size) for s in segments], name)
