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


@dataclass(frozen=True)
class VariantStats:
    peak_bitrate: int  # the highest of any segment: what BANDWIDTH means
    average_bitrate: int


def write_master_playlist(hls_dir: Path, ladder: Sequence[Rung], *, has_audio: bool) -> Path:
    """Write `master.m3u8` for the variants already packaged under `hls_dir/<quality>/`."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for rung in ladder:
        variant_dir = hls_dir / rung.quality
        stats = variant_stats(variant_dir / VARIANT_PLAYLIST)
        codecs = [avc1_codec((variant_dir / INIT_SEGMENT).read_bytes())]
        if has_audio:
            codecs.append(AAC_LC)
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={stats.peak_bitrate},"
            f"AVERAGE-BANDWIDTH={stats.average_bitrate},"
            f"RESOLUTION={rung.width}x{rung.height},FRAME-RATE={rung.fps:.3f},"
            f'CODECS="{",".join(codecs)}"'
        )
        lines.append(f"{rung.quality}/{VARIANT_PLAYLIST}")
    master = hls_dir / MASTER_PLAYLIST
    master.write_text("\n".join(lines) + "\n")
    return master


def variant_stats(playlist: Path) -> VariantStats:
    """Peak and average bit rate of a VOD variant, from its segments' sizes and durations."""
    duration: float | None = None
    total_bits, total_seconds, peak = 0, 0.0, 0
    for line in playlist.read_text().splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",", 1)[0])
        elif line and not line.startswith("#") and duration:
            bits = (playlist.parent / line).stat().st_size * 8
            peak = max(peak, round(bits / duration))
            total_bits, total_seconds = total_bits + bits, total_seconds + duration
            duration = None
    if not total_seconds:
        raise TranscodeFailed(f"HLS variant {playlist.parent.name} has no segments")
    return VariantStats(peak, round(total_bits / total_seconds))


def avc1_codec(init_segment: bytes) -> str:
    """RFC 6381 `avc1.PPCCLL` from the avcC box: profile, constraint flags, level."""
    at = init_segment.find(b"avcC")
    if at < 0 or len(init_segment) < at + 8:
        raise TranscodeFailed("HLS init segment has no H.264 configuration")
    return "avc1." + init_segment[at + 5 : at + 8].hex()
