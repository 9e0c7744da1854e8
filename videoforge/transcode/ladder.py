"""The rendition ladder: which qualities a source gets, at what size, rate and frame rate.

Pure: no ffmpeg here. Sizes are computed once so the command, the HLS master playlist and the
stored assets all agree on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from videoforge.transcode.probe import MediaInfo

MAX_FPS = 60.0
# Used for the GOP length only, when a source does not say its frame rate.
FALLBACK_FPS = 30.0
KEYFRAME_INTERVAL_S = 2


@dataclass(frozen=True)
class Quality:
    height: int
    maxrate: int
    bufsize: int


# `height` is the short side of the picture, so a portrait 1080x1920 source is "1080p" too.
QUALITIES: dict[str, Quality] = {
    "high": Quality(1080, 6_000_000, 12_000_000),
    "medium": Quality(720, 3_000_000, 6_000_000),
    "low": Quality(480, 1_200_000, 2_400_000),
}
# The API's names for the renditions, best first.
QUALITY_NAMES: tuple[str, ...] = tuple(QUALITIES)


@dataclass(frozen=True)
class Rung:
    quality: str
    width: int
    height: int
    maxrate: int
    bufsize: int
    fps: float

    @property
    def gop(self) -> int:
        """Frames between keyframes: the same for every rung, so HLS segments align."""
        return max(1, round(self.fps * KEYFRAME_INTERVAL_S))


def plan_ladder(info: MediaInfo, requested: Sequence[str]) -> list[Rung]:
    """The rungs to produce, largest first: never upscaled, and never none at all."""
    names = _ordered(requested)
    short_side = min(info.width, info.height)
    fps = min(info.fps, MAX_FPS) if info.fps > 0 else FALLBACK_FPS
    rungs = []
    for name in names:
        quality = QUALITIES[name]
        if quality.height <= short_side:
            width, height = _fit_short_side(info.width, info.height, quality.height)
            rungs.append(Rung(name, width, height, quality.maxrate, quality.bufsize, fps))
    if not rungs:
        # Smaller than every requested rung: one rendition at its own size.
        name = names[-1]
        quality = QUALITIES[name]
        width, height = _even_floor(info.width), _even_floor(info.height)
        rungs.append(Rung(name, width, height, quality.maxrate, quality.bufsize, fps))
    return rungs


def _ordered(requested: Sequence[str]) -> list[str]:
    unknown = sorted(set(requested) - set(QUALITIES))
    if unknown:
        raise ValueError(f"unknown quality: {', '.join(unknown)} (known: {', '.join(QUALITIES)})")
    if not requested:
        raise ValueError("at least one quality is required")
    return sorted(set(requested), key=lambda name: -QUALITIES[name].height)


def _fit_short_side(width: int, height: int, target: int) -> tuple[int, int]:
    """Scale so the short side is `target`, keeping the aspect ratio and even dimensions."""
    if width >= height:
        return min(_even_round(width * target / height), _even_floor(width)), target
    return target, min(_even_round(height * target / width), _even_floor(height))


def _even_round(value: float) -> int:
    return max(2, 2 * round(value / 2))


def _even_floor(value: int) -> int:
    return max(2, value - value % 2)
