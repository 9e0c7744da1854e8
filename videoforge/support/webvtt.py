"""WebVTT's cue timestamp, shared by the caption tracks and the storyboard index."""

from __future__ import annotations


def timestamp(seconds: float) -> str:
    """`seconds` as WebVTT writes a cue time, `HH:MM:SS.mmm`, rounded to the millisecond (the
    hours grow past 99 rather than wrap)."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"
