"""Test clips generated at test time with ffmpeg's lavfi sources (no media files committed),
and small helpers to inspect what the pipeline wrote.

`media_library(tmp_path_factory)` returns one `Media` per test session; each clip is generated
the first time a test asks for it.
"""

from __future__ import annotations

import json
import random
import re
import struct
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest

from videoforge.config import Config
from videoforge.transcode.binaries import Binaries, locate_binaries
from videoforge.transcode.runner import child_env

_library: Media | None = None


def media_library(tmp_path_factory: pytest.TempPathFactory) -> Media:
    """The session's clip library, in a session-scoped temporary directory."""
    global _library
    if _library is None:
        _library = Media(locate_binaries(Config()), tmp_path_factory.mktemp("media"))
    return _library


class Media:
    def __init__(self, binaries: Binaries, directory: Path) -> None:
        self.binaries = binaries
        self.directory = directory

    def landscape(self) -> Path:
        """1280x720, 3 s at 25 fps, with audio."""
        return self.clip("landscape", 1280, 720, seconds=3)

    def portrait(self) -> Path:
        """720x1280 stored upright, with audio."""
        return self.clip("portrait", 720, 1280)

    def rotated(self) -> Path:
        """854x480 stored, displayed 480x854: a display matrix says rotate by 90 degrees."""
        return self.clip("rotated", 854, 480, rotation=90)

    def no_audio(self) -> Path:
        return self.clip("no_audio", 640, 360, audio=False)

    def small(self) -> Path:
        """320x240: smaller than the smallest rung."""
        return self.clip("small", 320, 240)

    def odd(self) -> Path:
        """641x359 (4:4:4, since 4:2:0 H.264 needs even sizes): odd on both sides."""
        return self.clip("odd", 641, 359, pix_fmt="yuv444p")

    def clip(
        self,
        name: str,
        width: int,
        height: int,
        *,
        seconds: float = 2,
        fps: int = 25,
        audio: bool = True,
        rotation: int = 0,
        pix_fmt: str = "yuv420p",
    ) -> Path:
        """An H.264 (+ AAC) MP4 of moving test pattern, generated once per session."""
        path = self.directory / f"{name}.mp4"
        if path.exists():
            return path
        argv = [
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}",
        ]
        if audio:
            argv += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
            argv += ["-c:a", "aac", "-b:a", "64k"]
        argv += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", pix_fmt]
        if not rotation:
            self.ffmpeg(*argv, str(path))
            return path
        upright = self.directory / f"{name}-upright.mp4"
        self.ffmpeg(*argv, str(upright))
        # A display matrix only: the pixels stay as they are, players turn them.
        self.ffmpeg("-display_rotation", str(rotation), "-i", str(upright), "-c", "copy", str(path))
        return path

    def sdr_reference(self) -> Path:
        """854x480 BT.709, 2 s, nearly lossless: the picture the HDR clips are mastered from."""
        path = self.directory / "sdr_reference.mp4"
        if not path.exists():
            self.ffmpeg(
                *("-f", "lavfi", "-i", "testsrc2=size=854x480:rate=25:duration=2"),
                *("-c:v", "libx264", "-preset", "ultrafast", "-qp", "4", "-pix_fmt", "yuv420p"),
                *("-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"),
                str(path),
            )
        return path

    def hdr(self, transfer: str) -> Path:
        """`sdr_reference` mastered as a phone's 10-bit HEVC HDR: BT.2020 with PQ or HLG.

        `transfer` is ffmpeg's name: `smpte2084` (PQ) or `arib-std-b67` (HLG). The pixels are
        really converted (not only tagged), so a correct tone map gives the reference back.
        """
        path = self.directory / f"hdr_{transfer}.mp4"
        if path.exists():
            return path
        master = (
            "zscale=t=linear:npl=100,format=gbrpf32le,"
            f"zscale=p=bt2020:t={transfer}:m=bt2020nc:r=tv:npl=100,format=yuv420p10le"
        )
        x265 = f"log-level=error:colorprim=bt2020:transfer={transfer}:colormatrix=bt2020nc"
        self.ffmpeg(
            *("-i", str(self.sdr_reference()), "-vf", master),
            *("-c:v", "libx265", "-preset", "ultrafast", "-crf", "8", "-x265-params", x265),
            *("-color_primaries", "bt2020", "-color_trc", transfer, "-colorspace", "bt2020nc"),
            *("-tag:v", "hvc1", str(path)),
        )
        return path

    def hdr_without_primaries(self) -> Path:
        """The PQ clip with only its transfer tagged: primaries and matrix say "unspecified"."""
        path = self.directory / "hdr_untagged.mp4"
        if not path.exists():
            vui = "hevc_metadata=colour_primaries=2:matrix_coefficients=2"
            self.ffmpeg("-i", str(self.hdr("smpte2084")), "-c", "copy", "-bsf:v", vui, str(path))
        return path

    def transport_stream(self, suffix: str = ".ts") -> Path:
        """H.264 + AAC in MPEG-TS: 188-byte packets for `.ts`, 192-byte (BDAV, AVCHD) otherwise."""
        path = self.directory / f"transport{suffix}"
        if path.exists():
            return path
        argv = ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=2"]
        argv += ["-f", "lavfi", "-i", "sine=frequency=440:duration=2"]
        argv += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
        argv += ["-c:a", "aac", "-b:a", "64k", "-f", "mpegts"]
        if suffix != ".ts":
            # Encoded straight to M2TS: remuxing a .ts into 192-byte mode crashes ffmpeg 6.0.
            argv += ["-mpegts_m2ts_mode", "1"]
        self.ffmpeg(*argv, str(path))
        return path

    def interlaced(self) -> Path:
        """720x480 top field first, coded interlaced (ffprobe says `field_order` tt), 2 s."""
        path = self.directory / "interlaced.mp4"
        if path.exists():
            return path
        self.ffmpeg(
            # 50 progressive frames a second woven into 25 interlaced ones: real motion per field.
            *("-f", "lavfi", "-i", "testsrc2=size=720x480:rate=50:duration=2"),
            *("-vf", "tinterlace=interleave_top,fieldorder=tff"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
            *("-flags", "+ildct+ilme", "-top", "1", "-an", str(path)),
        )
        return path

    def corrupt(self) -> Path:
        """Random bytes named like a video."""
        path = self.directory / "corrupt.mp4"
        path.write_bytes(random.Random(7).randbytes(64 * 1024))
        return path

    def truncated(self) -> Path:
        """The first half of an MP4 whose index (moov) is at the end."""
        path = self.directory / "truncated.mp4"
        data = self.landscape().read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path

    def disguised_playlist(self, secret: Path) -> Path:
        """A text HLS playlist uploaded as `video.mp4`, naming another local file."""
        path = self.directory / "disguised" / "video.mp4"
        path.parent.mkdir(exist_ok=True)
        path.write_text(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
            f"#EXTINF:3.0,\n{secret.absolute()}\n#EXT-X-ENDLIST\n"
        )
        return path

    def disguised_transport_stream(self, secret: Path) -> Path:
        """The same text HLS playlist, uploaded as a camcorder's `clip.ts`."""
        path = self.directory / "disguised" / "clip.ts"
        path.parent.mkdir(exist_ok=True)
        path.write_text(self.disguised_playlist(secret).read_text())
        return path

    def ffmpeg(self, *args: str) -> None:
        argv = [str(self.binaries.ffmpeg), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        subprocess.run([*argv, *args], check=True, capture_output=True, timeout=60, env=child_env())

    def ffprobe(self, path: Path, *args: str) -> dict[str, Any]:
        """ffprobe's JSON for `path` (no whitelist: these are our own outputs)."""
        argv = [str(self.binaries.ffprobe), "-v", "error", "-of", "json", *args, str(path)]
        done = subprocess.run(argv, check=True, capture_output=True, timeout=60, env=child_env())
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def streams(self, path: Path) -> list[dict[str, Any]]:
        streams: list[dict[str, Any]] = self.ffprobe(path, "-show_streams")["streams"]
        return streams

    def keyframe_times(self, path: Path) -> list[float]:
        packets = self.ffprobe(
            path, "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags"
        )["packets"]
        return [round(float(p["pts_time"]), 2) for p in packets if "K" in p["flags"]]

    def frame_count(self, path: Path) -> int:
        streams = self.ffprobe(
            path,
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
        )["streams"]
        return int(streams[0]["nb_read_frames"])


def psnr(media: Media, picture: Path, reference: Path) -> float:
    """The mean PSNR (dB) of `picture` against `reference`, frame by frame, scaled to its size."""
    graph = "[1:v][0:v]scale2ref=flags=bicubic[ref][pic];[pic]format=yuv420p[a];"
    graph += "[ref]format=yuv420p[b];[a][b]psnr"
    argv = [str(media.binaries.ffmpeg), "-hide_banner", "-nostdin", "-i", str(picture)]
    argv += ["-i", str(reference), "-filter_complex", graph, "-f", "null", "-"]
    done = subprocess.run(
        argv, check=True, capture_output=True, text=True, timeout=60, env=child_env()
    )
    found = re.search(r"PSNR .* average:([\d.]+|inf)", done.stderr)
    assert found, done.stderr
    return float(found.group(1))


def top_level_boxes(path: Path) -> list[str]:
    """The types of an MP4's top-level boxes, in file order (`moov` before `mdat` = faststart)."""
    boxes = []
    with path.open("rb") as fh:
        while header := fh.read(8):
            size, kind = struct.unpack(">I4s", header)
            boxes.append(kind.decode("latin-1"))
            if size == 1:
                (size,) = struct.unpack(">Q", fh.read(8))
                fh.seek(size - 16, 1)
            elif size == 0:
                break
            else:
                fh.seek(size - 8, 1)
    return boxes


def ffmpeg_children(names: tuple[str, ...] = ("ffmpeg", "ffprobe")) -> list[psutil.Process]:
    """ffmpeg (and ffprobe) processes this test process started that still exist."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name().startswith(names):
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found
