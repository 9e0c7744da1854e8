"""Where a job's outputs live in storage: every key under `videos/output/{jobId}/`, named once.

The transcode writes these names into its output dir (`videoforge.transcode.command`), the
worker uploads each file under the job's prefix at its path inside that dir, the storage sweep
reads the job id back out of a key, and the admin cleanup's SQL builds keys from a job id column
(`key_parts`). A new output is added here. Nothing of ours is imported: anything may use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OUTPUTS = "videos/output/"  # every job's outputs, and nothing else, are under it
THUMBNAIL = "thumbnail.jpg"
PREVIEW = "preview.gif"
# The same frames as an animated WebP: the gallery's preview wherever it is the smaller file.
PREVIEW_WEBP = "preview.webp"
# The seek-bar thumbnails: the WebVTT index and its JPEG sprites (`sprite_file`), side by side,
# the index naming each sprite by its file name.
STORYBOARD_DIR = "storyboard"
STORYBOARD_VTT = "storyboard.vtt"
# The storyboard's frames before they are tiled, by their 0-based index in the whole video
# (`storyboard_frame_file`; ffmpeg's image2 pattern of the same names): a chunked job's chunks
# exchange them under their chunk's key (`OutputLayout.chunk_storyboard_frame`).
STORYBOARD_FRAME_PATTERN = "frame-%05d.jpg"
SPRITE_PATTERN = "storyboard-%03d.jpg"  # `sprite_file`'s names, as ffmpeg's image2 pattern
HLS_DIR = "hls"  # the HLS package: the master playlist and a directory per rendition
MASTER_PLAYLIST = "master.m3u8"
# A chunked job's work files that workers exchange (each chunk's video per rung): gone once the
# job has its renditions, and the storage sweep removes what a finished job left behind.
CHUNKS_DIR = "chunks"
_MAX_JOB_ID = 2**63 - 1  # a bigint


def key_parts(relative: str) -> tuple[str, str]:
    """What comes before and after the job id in any job's key of the output at `relative`:
    what SQL puts around a job id column (every key of this module is built from it)."""
    return OUTPUTS, f"/{relative}"


def rendition_file(quality: str) -> str:
    """The MP4 of one rung of the ladder, e.g. `high.mp4`."""
    return f"{quality}.mp4"


def sprite_file(index: int) -> str:
    """The storyboard's sprite `index` (0-based), e.g. `storyboard-000.jpg`."""
    return SPRITE_PATTERN % index


def storyboard_frame_file(index: int) -> str:
    """The storyboard's frame `index` before tiling, e.g. `frame-00042.jpg`."""
    return STORYBOARD_FRAME_PATTERN % index


def chunk_name(index: int) -> str:
    """A chunk's name from its 0-based index: digits only, in order when sorted as text."""
    return f"{index:05d}"


_BEFORE_ID, _AFTER_ID = key_parts("")
# Job ids as `OutputLayout` writes them: no sign, no leading zero, at most 19 digits.
_OUTPUT_KEY = re.compile(
    rf"{re.escape(_BEFORE_ID)}([1-9][0-9]{{0,18}}){re.escape(_AFTER_ID)}.+", re.DOTALL
)


@dataclass(frozen=True)
class OutputLayout:
    """The storage keys of one job's outputs."""

    job_id: int

    @classmethod
    def of_key(cls, key: str) -> OutputLayout | None:
        """The layout of the job whose output `key` is; None if `key` is no job's output."""
        match = _OUTPUT_KEY.fullmatch(key)
        if match is None or int(match[1]) > _MAX_JOB_ID:
            return None
        return cls(int(match[1]))

    def key(self, relative: str) -> str:
        """The key of the output at `relative`, a `/`-separated path inside the output dir."""
        before, after = key_parts(relative)
        return f"{before}{self.job_id}{after}"

    @property
    def prefix(self) -> str:
        """Every output of the job, and nothing else, is under it."""
        return self.key("")

    @property
    def thumbnail(self) -> str:
        return self.key(THUMBNAIL)

    @property
    def preview(self) -> str:
        return self.key(PREVIEW)

    @property
    def preview_webp(self) -> str:
        return self.key(PREVIEW_WEBP)

    @property
    def storyboard_prefix(self) -> str:
        """The storyboard: its index and every sprite are under it."""
        return self.key(f"{STORYBOARD_DIR}/")

    @property
    def storyboard(self) -> str:
        """The storyboard's WebVTT index, naming its sprites relative to itself."""
        return self.key(f"{STORYBOARD_DIR}/{STORYBOARD_VTT}")

    def sprite(self, index: int) -> str:
        return self.key(f"{STORYBOARD_DIR}/{sprite_file(index)}")

    def rendition(self, quality: str) -> str:
        return self.key(rendition_file(quality))

    @property
    def hls_prefix(self) -> str:
        """The HLS package: every playlist, init file and segment is under it."""
        return self.key(f"{HLS_DIR}/")

    @property
    def master_playlist(self) -> str:
        return self.key(f"{HLS_DIR}/{MASTER_PLAYLIST}")

    def hls_file(self, rendition: str, name: str) -> str:
        """A file of one rendition of the HLS package (`high`, `audio`): a playlist, an init
        segment or a media segment."""
        return self.key(f"{HLS_DIR}/{rendition}/{name}")

    @property
    def chunks_prefix(self) -> str:
        """Every chunk's video of a chunked job, while it runs."""
        return self.key(f"{CHUNKS_DIR}/")

    def chunk_video(self, index: int, quality: str) -> str:
        """One chunk's video-only MP4 of one rung, e.g. `.../chunks/00007/high.mp4`."""
        return self.key(f"{CHUNKS_DIR}/{chunk_name(index)}/{rendition_file(quality)}")

    def chunk_storyboard_frame(self, index: int, frame: int) -> str:
        """A storyboard frame one chunk wrote: `.../chunks/00007/storyboard/frame-00042.jpg`."""
        name = f"{STORYBOARD_DIR}/{storyboard_frame_file(frame)}"
        return self.key(f"{CHUNKS_DIR}/{chunk_name(index)}/{name}")

    def is_chunk_file(self, key: str) -> bool:
        """Whether `key` is one of this job's chunk files."""
        return key.startswith(self.chunks_prefix)
