"""The HLS master playlist, written by us: ffmpeg's `-master_pl_name` leaves out CODECS.

Every URI is relative (`high/index.m3u8`), so the package can be served from any prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from videoforge.storage.layout import MASTER_PLAYLIST
from videoforge.transcode.command import INIT_SEGMENT, VARIANT_PLAYLIST
from videoforge.transcode.ladder import Rung
from videoforge.transcode.runner import TranscodeFailed

AAC_LC = "mp4a.40.2"
AUDIO_GROUP = "audio"


@dataclass(frozen=True)
class VariantStats:
    peak_bitrate: int  # the highest of any segment: what BANDWIDTH means
    average_bitrate: int


@dataclass(frozen=True)
class Variant:
    """One rung as the master playlist lists it."""

    rung: Rung
    stats: VariantStats
    codec: str


def write_master_playlist(hls_dir: Path, ladder: Sequence[Rung], *, has_audio: bool) -> Path:
    """Write `master.m3u8` for the variants already packaged under `hls_dir/<quality>/`
    (audio and video muxed in each, as one pass packages them)."""
    variants = []
    for rung in ladder:
        variant_dir = hls_dir / rung.quality
        sizes = segment_sizes(variant_dir / VARIANT_PLAYLIST)
        codec = avc1_codec((variant_dir / INIT_SEGMENT).read_bytes())
        variants.append(Variant(rung, variant_stats(sizes, rung.quality), codec))
    master = hls_dir / MASTER_PLAYLIST
    master.write_text(master_playlist(variants, with_audio=has_audio))
    return master


def master_playlist(
    variants: Sequence[Variant], *, with_audio: bool, audio_rendition: str | None = None
) -> str:
    """The master playlist's text. With `audio_rendition` (its playlist's URI) the audio is a
    rendition of its own, which every variant names (and whose bit rate it counts)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    group = ""
    if audio_rendition is not None:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",NAME="Audio",DEFAULT=YES,'
            f'AUTOSELECT=YES,URI="{audio_rendition}"'
        )
        group = f',AUDIO="{AUDIO_GROUP}"'
    for variant in variants:
        rung, stats = variant.rung, variant.stats
        codecs = [variant.codec, AAC_LC] if with_audio else [variant.codec]
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={stats.peak_bitrate},"
            f"AVERAGE-BANDWIDTH={stats.average_bitrate},"
            f"RESOLUTION={rung.width}x{rung.height},FRAME-RATE={rung.fps:.3f},"
            f'CODECS="{",".join(codecs)}"{group}'
        )
        lines.append(f"{rung.quality}/{VARIANT_PLAYLIST}")
    return "\n".join(lines) + "\n"


def segment_sizes(playlist: Path) -> list[tuple[float, int]]:
    """(duration, bytes) of each segment of a playlist whose segments are beside it."""
    duration: float | None = None
    sizes = []
    for line in playlist.read_text().splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",", 1)[0])
        elif line and not line.startswith("#") and duration:
            sizes.append((duration, (playlist.parent / line).stat().st_size))
            duration = None
    return sizes


def variant_stats(sizes: Sequence[tuple[float, int]], name: str) -> VariantStats:
    """Peak and average bit rate of a variant, from its segments' durations and sizes."""
    total_bits, total_seconds, peak = 0, 0.0, 0
    for duration, size in sizes:
        bits = size * 8
        peak = max(peak, round(bits / duration))
        total_bits, total_seconds = total_bits + bits, total_seconds + duration
    if not total_seconds:
        raise TranscodeFailed(f"HLS variant {name} has no segments")
    return VariantStats(peak, round(total_bits / total_seconds))


def with_audio_bitrate(stats: VariantStats, audio: VariantStats) -> VariantStats:
    """A video-only variant's bit rates with its audio rendition's added: what a player
    fetches to play it."""
    return VariantStats(
        stats.peak_bitrate + audio.peak_bitrate, stats.average_bitrate + audio.average_bitrate
    )


def avc1_codec(init_segment: bytes) -> str:
    """RFC 6381 `avc1.PPCCLL` from the avcC box: profile, constraint flags, level."""
    at = init_segment.find(b"avcC")
    if at < 0 or len(init_segment) < at + 8:
        raise TranscodeFailed("HLS init segment has no H.264 configuration")
    return "avc1." + init_segment[at + 5 : at + 8].hex()
