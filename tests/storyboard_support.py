"""Reading a transcode's storyboard back: its WebVTT cues, and a check that they tile the whole
duration and point inside the sprites ffmpeg really wrote (sizes read with ffprobe)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from tests.media import Media

CUE = re.compile(
    r"(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})\n"
    r"(storyboard-\d{3}\.jpg)#xywh=(\d+),(\d+),(\d+),(\d+)"
)
Cue = tuple[float, float, str, int, int, int, int]


def cues(vtt: str) -> list[Cue]:
    """(start, end, sprite, x, y, w, h) of every cue, in order."""
    found = []
    for match in CUE.finditer(vtt):
        h1, m1, s1, ms1, h2, m2, s2, ms2 = (int(g) for g in match.groups()[:8])
        start = h1 * 3600 + m1 * 60 + s1 + ms1 / 1000
        end = h2 * 3600 + m2 * 60 + s2 + ms2 / 1000
        x, y, w, h = (int(g) for g in match.groups()[9:])
        found.append((start, end, match.group(9), x, y, w, h))
    return found


def check_storyboard(media: Media, directory: Path, duration: float) -> list[Cue]:
    """Assert the storyboard in `directory` covers [0, duration] without a gap or an overlap
    and that every cue's rectangle lies inside the real size of the sprite it names."""
    vtt = (directory / "storyboard.vtt").read_text()
    found = cues(vtt)
    assert vtt.startswith("WEBVTT\n\n") and found
    assert len(found) == vtt.count(" --> ")
    assert found[0][0] == 0
    assert found[-1][1] == pytest.approx(duration, abs=0.001)
    for (_, end, *_), (start, *_) in itertools.pairwise(found):
        assert start == end
    sizes = {}
    for path in directory.glob("storyboard-*.jpg"):
        stream = media.streams(path)[0]
        assert stream["codec_name"] == "mjpeg"
        sizes[path.name] = (stream["width"], stream["height"])
    for start, end, sprite, x, y, w, h in found:
        assert start < end
        width, height = sizes[sprite]
        assert x + w <= width and y + h <= height
    assert {cue[2] for cue in found} == set(sizes)  # no sprite left unused
    return found
