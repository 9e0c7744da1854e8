"""ffmpeg argv lists (pure): one encode that writes every output, and the HLS packaging remux.

One ffmpeg process decodes the source once and `split`s it into the renditions, the thumbnail
and the GIF (one process per output costs 1.40x the time for the same quality). ffmpeg 6 prints
no `-progress` report before every output has written its header, so the GIF uses a palette per
frame: it starts with its first frame (10% into the video) instead of after all of its 3 s. For
the same reason the storyboard's frames leave the decode as small JPEGs (for each cue the first
frame at or after its start, so the first at 0 s), and a second small run tiles them
(`build_tile_command`): a tiling output would write its first sprite only after 100 frames,
halfway through the video, and hold every progress report until then.
What every output needs alike (deinterlacing, the HDR tone map) runs once, before the split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from videoforge.storage.layout import (
    HLS_DIR,
    PREVIEW,
    PREVIEW_WEBP,
    SPRITE_PATTERN,
    STORYBOARD_DIR,
    STORYBOARD_FRAME_PATTERN,
    STORYBOARD_VTT,
    THUMBNAIL,
    rendition_file,
    sprite_file,
    storyboard_frame_file,
)
from videoforge.transcode.ladder import KEYFRAME_INTERVAL_S, MAX_FPS, Rung
from videoforge.transcode.probe import MediaInfo, input_args
from videoforge.transcode.storyboard import StoryboardPlan, frames_filter, storyboard_of

PRESET = "veryfast"
CRF = 23
AUDIO_BITRATE = "128k"
THUMBNAIL_AT = 0.10  # of the duration
GIF_SECONDS = 3.0
GIF_FPS = 12
GIF_WIDTH = 320
# The GIF's frames as an animated WebP too, in full colour (split before the palette): the
# gallery's preview wherever it is the smaller file.
WEBP_ARGS = ["-c:v", "libwebp_anim", "-lossless", "0", "-q:v", "60", "-loop", "0"]
HLS_SEGMENT_S = 4
# The storyboard's frames before tiling: a work dir in the output dir that is never uploaded.
FRAMES_DIR = "storyboard-frames"
# The tiling reads our own frames through the image2 demuxer, and nothing else.
FRAME_FORMATS = "image2"
VARIANT_PLAYLIST = "index.m3u8"
INIT_SEGMENT = "init.mp4"
# Our own renditions are the only input of the remux: allow nothing else.
RENDITION_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2"
# One progressive frame per interlaced frame (not one per field: the frame rate stays), before
# any scaling, which would smear the two fields into each other for good.
DEINTERLACE = "bwdif=mode=send_frame"
# HDR to SDR: linear light, BT.2020 to BT.709 primaries, then the tone curve. Mobius is linear
# up to its knee and compresses only the highlights above it, so the SDR-range bulk of a phone
# clip keeps its brightness and contrast. Measured on an SDR picture mastered as PQ and as HLG and
# mapped back: mobius 26.5 dB PSNR against that picture (mean luma 120 against 125), reinhard
# 24.7, hable 19.4 (its filmic curve dims the whole picture to a mean luma of 100); untouched
# 14.5 (PQ) and 17.3 (HLG). desat=0: no desaturation of highlights, colours stay as shot.
TONE_MAP_OPERATOR = "mobius"
# The input tags are passed explicitly: zscale cannot guess them, and phones do not always write
# primaries and matrix. Untagged means BT.2020, what PQ and HLG are defined with.
_ZSCALE_PRIMARIES = frozenset({"bt709", "bt2020", "smpte431", "smpte432"})
_ZSCALE_MATRICES = frozenset({"bt709", "bt2020nc", "bt2020c"})
AAC_ARGS = ["-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ac", "2"]
# Uploads carry GPS positions and device names in their metadata: do not republish them.
NO_METADATA = ["-map_metadata", "-1", "-map_chapters", "-1"]
# What an HDR source's renditions say they are once tone-mapped.
SDR_TAGS = ["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"]


@dataclass(frozen=True)
class Layout:
    """Where each output goes inside the output directory. Its path there is its key under the
    job's prefix, so the names come from `videoforge.storage.layout`."""

    outdir: Path

    def video(self, quality: str) -> Path:
        return self.outdir / rendition_file(quality)

    @property
    def thumbnail(self) -> Path:
        return self.outdir / THUMBNAIL

    @property
    def preview(self) -> Path:
        return self.outdir / PREVIEW

    @property
    def preview_webp(self) -> Path:
        return self.outdir / PREVIEW_WEBP

    @property
    def frames(self) -> Path:
        """The storyboard's frames before tiling (a work dir: never uploaded)."""
        return self.outdir / FRAMES_DIR

    def frame(self, index: int) -> Path:
        return self.frames / storyboard_frame_file(index)

    @property
    def storyboard_dir(self) -> Path:
        return self.outdir / STORYBOARD_DIR

    @property
    def storyboard(self) -> Path:
        return self.storyboard_dir / STORYBOARD_VTT

    def sprite(self, index: int) -> Path:
        return self.storyboard_dir / sprite_file(index)

    @property
    def hls(self) -> Path:
        return self.outdir / HLS_DIR

    def variant(self, quality: str) -> Path:
        return self.hls / quality / VARIANT_PLAYLIST


def build_command(
    ffmpeg: Path,
    source: Path,
    outdir: Path,
    info: MediaInfo,
    ladder: Sequence[Rung],
    *,
    threads: int | None = None,
    storyboard: bool = True,
    webp: bool = True,
) -> list[str]:
    """One ffmpeg run decoding the source once: every rendition, the thumbnail, the GIF, the
    WebP preview (where the build has its encoder) and the storyboard's frames (unless told
    not to: `bench/transcode.py --storyboard` measures what they cost)."""
    layout = Layout(outdir)
    argv = [*global_args(ffmpeg, threads), *thread_args(threads), *input_args(source)]
    argv += ["-filter_complex", filter_graph(info, ladder, storyboard=storyboard, webp=webp)]
    for rung in ladder:
        argv += rendition_args(rung, info.has_audio, threads, tone_mapped=info.is_hdr)
        argv.append(file_arg(layout.video(rung.quality)))
    argv += stills_output_args(layout, threads, webp=webp)
    if storyboard and storyboard_of(info) is not None:
        argv += frames_output_args(layout.frames, 0, threads)
    return argv


def stills_output_args(layout: Layout, threads: int | None, *, webp: bool) -> list[str]:
    """The `[thumb]` branch as the JPEG thumbnail, the `[gif]` branch as the GIF preview and,
    with `webp`, the `[webp]` branch as the animated WebP (libwebp_anim has no threads)."""
    argv = ["-map", "[thumb]", "-frames:v", "1", "-update", "1", "-c:v", "mjpeg", "-q:v", "2"]
    argv += [*thread_args(threads), "-f", "image2", file_arg(layout.thumbnail)]
    argv += ["-map", "[gif]", "-c:v", "gif", "-loop", "0", *thread_args(threads)]
    argv += ["-f", "gif", file_arg(layout.preview)]
    if webp:
        argv += ["-map", "[webp]", *WEBP_ARGS, "-f", "webp", file_arg(layout.preview_webp)]
    return argv


def frames_output_args(directory: Path, first: int, threads: int | None) -> list[str]:
    """The `[story]` branch as small JPEGs in `directory`, numbered from `first`."""
    argv = ["-map", "[story]", "-c:v", "mjpeg", "-q:v", "3", *thread_args(threads)]
    argv += ["-fps_mode", "passthrough", "-start_number", str(first), "-f", "image2"]
    return [*argv, file_arg(directory / STORYBOARD_FRAME_PATTERN)]


def build_tile_command(ffmpeg: Path, layout: Layout, plan: StoryboardPlan) -> list[str]:
    """The storyboard's frames (numbered from 0, without a gap) tiled into its sprites."""
    tile = plan.tile_filter
    argv = [*global_args(ffmpeg, None), "-f", "image2", "-start_number", "0"]
    argv += input_args(layout.frames / STORYBOARD_FRAME_PATTERN, FRAME_FORMATS)
    argv += ["-vf", tile, "-c:v", "mjpeg", "-q:v", "4", "-start_number", "0", "-f", "image2"]
    return [*argv, file_arg(layout.storyboard_dir / SPRITE_PATTERN)]


def filter_graph(
    info: MediaInfo, ladder: Sequence[Rung], *, storyboard: bool = True, webp: bool = True
) -> str:
    """The decoded source `split` into the renditions, the thumbnail, the GIF and the
    storyboard's frames (with `storyboard`, where the source has one)."""
    plan = storyboard_of(info) if storyboard else None
    extra = ("[t]", "[g]") if plan is None else ("[t]", "[g]", "[s]")
    parts = rung_filters(info, ladder, extra=extra)
    top = ladder[0]
    start = gif_start(info.duration)
    parts += [
        # The second trim ends the branch after one frame rather than letting frames pile up.
        f"[t]trim=start={seconds_arg(thumbnail_time(info.duration))},trim=end_frame=1,"
        f"setpts=PTS-STARTPTS,scale={top.width}:{top.height},setsar=1[thumb]",
        f"[g]trim=start={seconds_arg(start)}:duration={GIF_SECONDS:g},setpts=PTS-STARTPTS,"
        + gif_filters(top, webp=webp),
    ]
    if plan is not None:
        parts.append(f"[s]{frames_filter(plan, info.fps)}[story]")
    return ";".join(parts)


def gif_filters(top: Rung, *, webp: bool) -> str:
    """A GIF branch's frames to `[gif]`: its rate and size, then a palette per frame, so the
    GIF starts at once instead of after all of its 3 s were analysed (which would hold back
    the first progress report until then); with `webp`, the same frames, before the palette,
    to `[webp]`."""
    gif_width, gif_height = gif_size(top)
    branches = "split=3[ga][gb][webp]" if webp else "split=2[ga][gb]"
    return (
        f"fps={GIF_FPS},scale={gif_width}:{gif_height}:flags=lanczos,setsar=1,{branches};"
        "[ga]palettegen=stats_mode=single[palette];[gb][palette]paletteuse=new=1[gif]"
    )


def rung_filters(info: MediaInfo, ladder: Sequence[Rung], extra: Sequence[str] = ()) -> list[str]:
    """The source filters, then a `split` into one branch per rung (`[v_{quality}]`, scaled)
    and the `extra` branches, left to the caller."""
    branches = [f"[r{i}]" for i in range(len(ladder))]
    source = "".join(f"{step}," for step in source_filters(info))
    parts = [f"[0:v:0]{source}split={len(branches) + len(extra)}{''.join([*branches, *extra])}"]
    cap = f"fps={MAX_FPS:g}," if info.fps > MAX_FPS else ""
    for branch, rung in zip(branches, ladder, strict=True):
        scale = f"scale={rung.width}:{rung.height},setsar=1,format=yuv420p"
        parts.append(f"{branch}{cap}{scale}[v_{rung.quality}]")
    return parts


def source_filters(info: MediaInfo) -> list[str]:
    """What every output of this source needs first: none for a progressive SDR source."""
    steps = [DEINTERLACE] if info.is_interlaced else []
    if info.is_hdr:
        steps.append(tone_map(info))
    return steps


def tone_map(info: MediaInfo) -> str:
    """PQ or HLG to 8-bit SDR BT.709 (limited range), for a source whose `is_hdr` is true."""
    primaries = info.color_primaries if info.color_primaries in _ZSCALE_PRIMARIES else "bt2020"
    matrix = info.color_space if info.color_space in _ZSCALE_MATRICES else "bt2020nc"
    return ",".join(
        [
            # `p=` too: without it an untagged source's linear frames have no primaries, and
            # the next zscale finds "no path between colorspaces".
            f"zscale=tin={info.color_transfer}:pin={primaries}:min={matrix}"
            f":t=linear:p={primaries}:npl=100",
            "format=gbrpf32le",
            "zscale=p=bt709",
            f"tonemap=tonemap={TONE_MAP_OPERATOR}:desat=0",
            "zscale=t=bt709:m=bt709:r=tv",
            "format=yuv420p",
        ]
    )


def build_hls_command(
    ffmpeg: Path, outdir: Path, ladder: Sequence[Rung], *, has_audio: bool
) -> list[str]:
    """Package the finished MP4s as HLS fMP4 by stream copy: no decode, no encode."""
    layout = Layout(outdir)
    argv = global_args(ffmpeg, None)
    for rung in ladder:
        argv += input_args(layout.video(rung.quality), RENDITION_FORMATS)
    for index, rung in enumerate(ladder):
        argv += ["-map", f"{index}:v:0"]
        if has_audio:
            argv += ["-map", f"{index}:a:0"]
        argv += ["-c", "copy", "-f", "hls", "-hls_time", str(HLS_SEGMENT_S)]
        argv += ["-hls_playlist_type", "vod", "-hls_segment_type", "fmp4"]
        argv += ["-hls_flags", "independent_segments", "-hls_fmp4_init_filename", INIT_SEGMENT]
        argv += ["-start_number", "1"]
        variant = layout.variant(rung.quality)
        argv += [
            "-hls_segment_filename",
            file_arg(variant.parent / "seg_%05d.m4s"),
            file_arg(variant),
        ]
    return argv


def thumbnail_time(duration: float) -> float:
    return duration * THUMBNAIL_AT


def gif_start(duration: float) -> float:
    """Around 10% in, but early enough for a full GIF when the video is short."""
    return max(0.0, min(duration * THUMBNAIL_AT, duration - GIF_SECONDS))


def gif_size(top: Rung) -> tuple[int, int]:
    width = min(GIF_WIDTH, top.width)
    return width, max(2, 2 * round(top.height * width / top.width / 2))


def global_args(ffmpeg: Path, threads: int | None) -> list[str]:
    """What every ffmpeg run of ours starts with: quiet, progress on stdout, overwrite."""
    argv = [str(ffmpeg), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]
    argv += ["-progress", "pipe:1", "-y"]
    if threads:
        argv += ["-filter_complex_threads", str(threads)]
    return argv


def rendition_args(
    rung: Rung, has_audio: bool, threads: int | None, *, tone_mapped: bool
) -> list[str]:
    """One rung's encoder settings, its audio (or none) and its MP4 muxing."""
    gop = str(rung.gop)
    argv = ["-map", f"[v_{rung.quality}]", "-c:v", "libx264", "-preset", PRESET, "-crf", str(CRF)]
    argv += ["-maxrate", _kbps(rung.maxrate), "-bufsize", _kbps(rung.bufsize)]
    # A fixed GOP and no scene-cut keyframes: every rung has a keyframe at the same instants,
    # so HLS segments line up across rungs.
    argv += ["-g", gop, "-keyint_min", gop, "-sc_threshold", "0"]
    argv += ["-force_key_frames", f"expr:gte(t,n_forced*{KEYFRAME_INTERVAL_S})"]
    argv += ["-map", "0:a:0", *AAC_ARGS] if has_audio else ["-an"]
    argv += [*NO_METADATA, *thread_args(threads)]
    if tone_mapped:
        # Said explicitly: a player that trusts a leftover PQ/HLG tag shows it washed out again.
        argv += ["-color_range", "tv", *SDR_TAGS]
    argv += ["-movflags", "+faststart", "-f", "mp4"]
    return argv


def thread_args(threads: int | None) -> list[str]:
    return ["-threads", str(threads)] if threads else []


def _kbps(bits_per_second: int) -> str:
    return f"{bits_per_second // 1000}k"


def seconds_arg(value: float) -> str:
    return f"{value:.3f}"


def file_arg(path: Path) -> str:
    """A local path as ffmpeg must read it: the file protocol, whatever the name looks like."""
    return f"file:{path.absolute()}"
