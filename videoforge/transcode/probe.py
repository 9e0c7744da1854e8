"""ffprobe an untrusted upload: what it is, and whether we agree to transcode it.

Every ffprobe and ffmpeg run that reads an upload uses `input_args`: an explicit demuxer whitelist
(a text HLS playlist named `video.mp4` would otherwise make ffmpeg read the local files it names,
whatever `-protocol_whitelist` says) and only the `file` protocol, or for an object read over
HTTP(S) only that scheme's protocols.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from videoforge.config import TranscodeConfig
from videoforge.errors import VideoforgeError
from videoforge.transcode.runner import run_capture
from videoforge.transcode.source import RemoteSource, Source, http_input_options

# Containers phones, cameras and screen recorders write, none of which can point at another file.
# Never hls, dash, concat, image2 or anything else that follows names written inside the input.
INPUT_FORMATS = (
    "mov,mp4,m4a,3gp,3g2,mj2",
    "matroska,webm",
    "avi",
    # MPEG transport streams: .ts (TV recordings, screen recorders) and 192-byte-packet .mts/.m2ts
    # (AVCHD camcorders). A TS is packets of one multiplex: no playlist, no reference to another
    # file or URL, so this demuxer only ever reads the input it was given. A text playlist named
    # `.ts` is probed as `hls` and refused like any other.
    "mpegts",
    "flv",
)
FORMAT_WHITELIST = ",".join(INPUT_FORMATS)
_ALLOWED = frozenset(FORMAT_WHITELIST.split(","))
_NOT_WHITELISTED = re.compile(r"\[(\w+) @ [^\]]*\] Format not on whitelist")


# PQ (HDR10, most Android phones) and HLG (iPhones, broadcast).
HDR_TRANSFERS = frozenset({"smpte2084", "arib-std-b67"})
# Top or bottom field first, coded and displayed in either order; not `progressive`/`unknown`.
INTERLACED_FIELD_ORDERS = frozenset({"tt", "bb", "tb", "bt"})
_UNSPECIFIED = frozenset({"", "unknown", "unspecified", "reserved"})


class InvalidMedia(VideoforgeError):
    """Not a video file we can transcode"""

    status = 400
    # The same file fails the same way: never worth another attempt.
    retryable: ClassVar[bool] = False


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    width: int  # displayed size: after rotation and non-square pixels
    height: int
    rotation: int  # 0, 90, 180 or 270
    video_codec: str
    audio_codec: str | None
    has_audio: bool
    fps: float  # 0.0 when the source does not say
    format_name: str
    bit_rate: int | None
    # ffprobe's names (`smpte2084`, `bt2020`, `tt`...); None where the source does not say.
    color_transfer: str | None = None
    color_primaries: str | None = None
    color_space: str | None = None
    field_order: str | None = None

    @property
    def is_hdr(self) -> bool:
        """PQ or HLG: pictures an 8-bit BT.709 rendition shows washed out unless tone-mapped."""
        return self.color_transfer in HDR_TRANSFERS

    @property
    def is_interlaced(self) -> bool:
        """Coded as fields: combed on any progressive screen unless deinterlaced."""
        return self.field_order in INTERLACED_FIELD_ORDERS


def input_args(source: Source, formats: str = FORMAT_WHITELIST) -> list[str]:
    """The options and `-i` that open `source` safely: a file's for ffprobe and ffmpeg alike, a
    remote source's for ffmpeg only (ffprobe has no `-xerror`)."""
    if isinstance(source, RemoteSource):
        return [
            *("-format_whitelist", formats, "-protocol_whitelist", source.protocols),
            *http_input_options(source),
            *("-i", source.url),
        ]
    return [
        "-format_whitelist",
        formats,
        "-protocol_whitelist",
        "file",
        "-i",
        # `file:` so a colon in a path can never select another protocol.
        f"file:{source.absolute()}",
    ]


async def probe(ffprobe: Path, path: Path, *, timeout: float = 30) -> MediaInfo:
    """Describe `path`; InvalidMedia if it is not a video we accept."""
    argv = [str(ffprobe), "-hide_banner", "-loglevel", "error"]
    argv += [*input_args(path), "-show_format", "-show_streams", "-print_format", "json"]
    returncode, stdout, stderr = await run_capture(argv, timeout=timeout)
    if returncode != 0:
        raise InvalidMedia(_reason(stderr, path))
    try:
        data = json.loads(stdout)
    except ValueError:
        raise InvalidMedia("Not a video file (unreadable metadata)") from None
    return parse_probe(data)


def _reason(stderr: str, path: Path) -> str:
    rejected = _NOT_WHITELISTED.search(stderr)
    if rejected:
        return f"Unsupported container format: {rejected.group(1)}"
    lines = [line for line in stderr.splitlines() if line.strip()]
    # The last line reads `file:/abs/input: Invalid data...`: keep the reason, not our paths.
    last = lines[-1].rsplit(": ", 1)[-1] if lines else "ffprobe failed"
    return f"Not a video file ({last.replace(str(path.absolute()), path.name)})"


def parse_probe(data: Mapping[str, Any]) -> MediaInfo:
    """MediaInfo from ffprobe's `-show_format -show_streams` JSON."""
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    format_name = str(fmt.get("format_name", ""))
    if not format_name or not set(format_name.split(",")) <= _ALLOWED:
        raise InvalidMedia(f"Unsupported container format: {format_name or 'unknown'}")
    video = next((s for s in streams if _is_video(s)), None)
    if video is None:
        raise InvalidMedia("No video stream found")
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = _number(fmt.get("duration")) or _number(video.get("duration"))
    if not duration or duration <= 0:
        raise InvalidMedia("Unknown or zero duration")
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise InvalidMedia("Unknown video dimensions")
    sar = _ratio(video.get("sample_aspect_ratio"))
    if sar and sar != 1:
        width = max(2, round(width * sar))
    rotation = _rotation(video)
    if rotation in (90, 270):
        width, height = height, width
    fps = _ratio(video.get("avg_frame_rate")) or _ratio(video.get("r_frame_rate")) or 0.0
    bit_rate = _number(fmt.get("bit_rate"))
    return MediaInfo(
        duration=duration,
        width=width,
        height=height,
        rotation=rotation,
        video_codec=str(video.get("codec_name", "unknown")),
        audio_codec=str(audio.get("codec_name", "unknown")) if audio else None,
        has_audio=audio is not None,
        fps=fps,
        format_name=format_name,
        bit_rate=int(bit_rate) if bit_rate else None,
        color_transfer=_tag(video, "color_transfer"),
        color_primaries=_tag(video, "color_primaries"),
        color_space=_tag(video, "color_space"),
        field_order=_tag(video, "field_order"),
    )


def check_limits(info: MediaInfo, config: TranscodeConfig) -> None:
    """InvalidMedia if the source is longer or larger than this server transcodes."""
    if info.duration > config.max_duration_s:
        raise InvalidMedia(
            f"Video is {info.duration:.0f} s long; the limit is {config.max_duration_s} s"
        )
    if info.width * info.height > config.max_pixels:
        raise InvalidMedia(
            f"Video is {info.width}x{info.height}; the limit is {config.max_pixels} pixels"
        )


def _is_video(stream: Mapping[str, Any]) -> bool:
    # Cover art in an audio file is a one-frame "video" stream: not a video.
    attached = (stream.get("disposition") or {}).get("attached_pic")
    return stream.get("codec_type") == "video" and not attached


def _rotation(stream: Mapping[str, Any]) -> int:
    degrees = None
    for side_data in stream.get("side_data_list") or []:
        if "rotation" in side_data:
            degrees = _number(side_data["rotation"])
    if degrees is None:
        degrees = _number((stream.get("tags") or {}).get("rotate"))
    return (round((degrees or 0) / 90) * 90) % 360


def _tag(stream: Mapping[str, Any], name: str) -> str | None:
    value = str(stream.get(name) or "").strip().lower()
    return None if value in _UNSPECIFIED else value


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _ratio(value: Any) -> float | None:
    """`30000/1001` or `64:45` as a number; None for `0/0`, `N/A` and friends."""
    num, _, den = str(value).replace(":", "/").partition("/")
    numerator, denominator = _number(num), _number(den or "1")
    if not numerator or not denominator or numerator <= 0 or denominator <= 0:
        return None
    return numerator / denominator
