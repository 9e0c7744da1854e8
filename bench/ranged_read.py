"""One chunk read over a presigned URL, ranged, against downloading the whole source first.

    .venv/bin/python bench/ranged_read.py             # 10 min 720p25 source, a 60 s chunk
    .venv/bin/python bench/ranged_read.py --quick     # 2 min source, a 20 s chunk
    .venv/bin/python bench/ranged_read.py --rate 100  # the store's link capped at 100 MB/s

The source is generated (testsrc2 and a tone, x264 ultrafast, a keyframe every 2 s, its index at
the end as most phones write it) and stored in SeaweedFS (the tests' runner). The chunk in the
middle of its plan is encoded as a chunk task encodes it (`build_chunk_command`, the low rung by
default: the encode is the same work on both sides), twice: ffmpeg reading only the chunk's
range over the URL `chunk_source` gives, then the whole object downloaded over the same URL
first and the chunk encoded from the file. Both read through one proxy in front of SeaweedFS that
counts the body bytes it sends (and paces them with --rate), so bytes are what left the store.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]
sys.path.insert(0, str(REPO))  # the tests' SeaweedFS runner

import aiohttp  # noqa: E402 (after the path fix: bench/http.py would shadow `http`)
from aiohttp import web  # noqa: E402
from yarl import URL  # noqa: E402

from tests.fixtures.s3 import run_seaweedfs  # noqa: E402
from videoforge.config import Config, build_config  # noqa: E402
from videoforge.jobs.sources import chunk_source  # noqa: E402
from videoforge.storage import S3Storage  # noqa: E402
from videoforge.transcode.binaries import Binaries, locate_binaries  # noqa: E402
from videoforge.transcode.chunks import (  # noqa: E402
    Chunk,
    ChunkLayout,
    build_chunk_command,
    plan_chunks,
)
from videoforge.transcode.ladder import plan_ladder  # noqa: E402
from videoforge.transcode.probe import MediaInfo, probe  # noqa: E402
from videoforge.transcode.runner import child_env, run_ffmpeg  # noqa: E402
from videoforge.transcode.source import RemoteSource, Source  # noqa: E402

KEY = "videos/source/bench.mp4"
FPS = 25
MB = 1_000_000
PIECE = 64 * 1024
RANGED = "ranged over the URL  "
WHOLE = "download, then encode"


@dataclass
class Proxy:
    """Passes GETs on to the S3 server, counting (and optionally pacing) the bytes it sends."""

    upstream: str
    session: aiohttp.ClientSession
    rate: float  # bytes a second; 0: as fast as it goes
    port: int = 0
    sent: int = 0
    requests: int = 0

    def url_of(self, signed: str) -> str:
        return f"http://127.0.0.1:{self.port}{signed.removeprefix(self.upstream)}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        headers = {k: v for k, v in request.headers.items() if k in ("Range", "If-Match")}
        target = URL(f"{self.upstream}{request.path_qs}", encoded=True)
        async with self.session.get(target, headers=headers) as answer:
            kept = ("Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "ETag")
            passed = {k: v for k, v in answer.headers.items() if k in kept}
            response = web.StreamResponse(status=answer.status, headers=passed)
            sock = request.transport.get_extra_info("socket") if request.transport else None
            if sock is not None:  # what ffmpeg leaves unread when it seeks is not counted
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, PIECE)
            await response.prepare(request)
            started, sent = time.perf_counter(), 0
            try:
                async for piece in answer.content.iter_chunked(PIECE):
                    await response.write(piece)
                    self.sent += len(piece)
                    sent += len(piece)
                    if self.rate:
                        await asyncio.sleep(
                            max(0.0, started + sent / self.rate - time.perf_counter())
                        )
            except ConnectionError:
                pass  # ffmpeg seeked elsewhere and hung up
            return response


@dataclass(frozen=True)
class Side:
    bytes: int
    requests: int
    download_s: float
    encode_s: float

    @property
    def wall_s(self) -> float:
        return self.download_s + self.encode_s


def generate(binaries: Binaries, path: Path, size: str, seconds: float) -> None:
    argv = [str(binaries.ffmpeg), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    argv += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}:duration={seconds:g}"]
    argv += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds:g}"]
    argv += ["-c:v", "libx264", "-preset", "ultrafast", "-g", str(2 * FPS), "-pix_fmt", "yuv420p"]
    argv += ["-c:a", "aac", "-b:a", "128k", str(path)]
    subprocess.run(argv, check=True, timeout=3600, env=child_env())


@dataclass(frozen=True)
class Encoding:
    """The chunk's encode, as a chunk task runs it, into a fresh directory each time."""

    binaries: Binaries
    info: MediaInfo
    chunk: Chunk
    qualities: list[str]
    base: Path

    async def run(self, source: Source, name: str) -> float:
        work = self.base / name
        shutil.rmtree(work, ignore_errors=True)
        layout = ChunkLayout(work)
        layout.chunk_dir(self.chunk).mkdir(parents=True)
        ladder = plan_ladder(self.info, self.qualities)
        argv = build_chunk_command(
            self.binaries.ffmpeg, source, self.info, ladder, self.chunk, layout
        )
        started = time.perf_counter()
        await run_ffmpeg(argv, duration=self.chunk.duration, timeout=3600)
        return time.perf_counter() - started

    async def download_first(self, session: aiohttp.ClientSession, url: str) -> tuple[float, float]:
        """(download, encode) seconds: the whole object to a file, then the chunk from it."""
        copy = self.base / "downloaded.mp4"
        started = time.perf_counter()
        async with session.get(URL(url, encoded=True)) as answer:
            answer.raise_for_status()
            with copy.open("wb") as fh:
                async for piece in answer.content.iter_chunked(1024 * 1024):
                    fh.write(piece)
        download_s = time.perf_counter() - started
        encode_s = await self.run(copy, "whole")
        copy.unlink()
        return download_s, encode_s


async def measure(
    args: argparse.Namespace, binaries: Binaries, source: Path, base: Path, endpoint: str
) -> None:
    info = await probe(binaries.ffprobe, source)
    chunks = plan_chunks(info.duration, args.chunk)
    chunk = chunks[len(chunks) // 2]
    storage_section = {"backend": "s3", "bucket": "bench", "endpoint_url": endpoint}
    config = build_config({"storage": {**storage_section, "create_bucket": True}})
    encoding = Encoding(binaries, info, chunk, args.qualities.split(","), base)
    async with S3Storage(config.storage) as storage, aiohttp.ClientSession() as session:
        await storage.put_file(KEY, source, "video/mp4")
        head = await storage.head(KEY)
        assert head is not None
        proxy = Proxy(endpoint, session, args.rate * MB)
        app = web.Application()
        app.router.add_get("/{path:.*}", proxy.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = _listening_socket()
        proxy.port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        try:
            remote = await chunk_source(storage, KEY, head.version, 3600)
            assert isinstance(remote, RemoteSource)
            proxied = replace(remote, url=proxy.url_of(remote.url))
            sides: dict[str, list[Side]] = {RANGED: [], WHOLE: []}
            for repeat in range(args.repeat):
                # Alternating, so that whatever drifts on the machine hits both sides alike.
                order = (RANGED, WHOLE) if repeat % 2 == 0 else (WHOLE, RANGED)
                for name in order:
                    proxy.sent = proxy.requests = 0
                    if name == RANGED:
                        timing = (0.0, await encoding.run(proxied, "ranged"))
                    else:
                        timing = await encoding.download_first(session, proxied.url)
                    sides[name].append(Side(proxy.sent, proxy.requests, *timing))
        finally:
            await runner.cleanup()
    report(args, info, head.size, chunk, len(chunks), encoding.qualities, sides)


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def report(
    args: argparse.Namespace,
    info: MediaInfo,
    size: int,
    chunk: Chunk,
    count: int,
    qualities: list[str],
    sides: dict[str, list[Side]],
) -> None:
    end = chunk.start + chunk.duration
    print(
        f"source: {info.duration:.0f} s of {info.width}x{info.height} at {info.fps:g} fps, "
        f"{size / MB:.1f} MB ({size * 8 / info.duration / MB:.1f} Mb/s), index at the end"
    )
    link = f"{args.rate:g} MB/s" if args.rate else "unthrottled (loopback)"
    print(
        f"chunk {chunk.index + 1} of {count}: {chunk.start:.0f}-{end:.0f} s, "
        f"rungs {','.join(qualities)}; link: {link}; medians of {args.repeat}"
    )
    medians = {}
    for name, runs in sides.items():
        side = medians[name] = Side(
            int(statistics.median(r.bytes for r in runs)),
            runs[0].requests,
            statistics.median(r.download_s for r in runs),
            statistics.median(r.encode_s for r in runs),
        )
        walls = ", ".join(f"{r.wall_s:.1f}" for r in runs)
        print(
            f"  {name}: {side.bytes / MB:6.1f} MB ({side.bytes / size:6.1%}) in "
            f"{side.requests} requests; {side.download_s:5.1f} s download + "
            f"{side.encode_s:5.1f} s encode = {side.wall_s:5.1f} s wall (runs: {walls})"
        )
    ranged, whole = medians[RANGED], medians[WHOLE]
    print(
        f"ranged / download first: bytes {ranged.bytes / whole.bytes:.3f}, "
        f"wall {ranged.wall_s / whole.wall_s:.3f}"
    )


def source_version() -> str:
    def git(*argv: str) -> str:
        done = subprocess.run(["git", "-C", str(REPO), *argv], capture_output=True, text=True)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return (
        f"{commit} + uncommitted changes" if git("status", "--porcelain", "videoforge") else commit
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="2 min source, 20 s chunk")
    parser.add_argument("--seconds", type=float, help="source length (default 600)")
    parser.add_argument("--size", default="1280x720", help="source size (default 1280x720)")
    parser.add_argument("--chunk", type=int, help="chunk_seconds (default 60)")
    parser.add_argument("--qualities", default="low", help="rungs encoded (default low)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side (default 3)")
    parser.add_argument("--rate", type=float, default=0, help="MB/s the store sends (0: no cap)")
    args = parser.parse_args()
    args.seconds = args.seconds or (120.0 if args.quick else 600.0)
    args.chunk = args.chunk or (20 if args.quick else 60)
    binaries = locate_binaries(Config())
    version = (
        subprocess.run(
            [str(binaries.ffmpeg), "-hide_banner", "-version"], capture_output=True, text=True
        )
        .stdout.split(" Copyright")[0]
        .strip()
    )
    print(f"machine: {os.cpu_count()} cores; {version}; videoforge {source_version()}")
    base = Path(tempfile.mkdtemp(prefix="vf-ranged-bench-"))
    try:
        source = base / "source.mp4"
        started = time.perf_counter()
        generate(binaries, source, args.size, args.seconds)
        print(f"(source generated in {time.perf_counter() - started:.0f} s)")
        weed = base / "seaweedfs"
        weed.mkdir()
        with run_seaweedfs(weed) as (server, _):
            os.environ |= {
                "AWS_ACCESS_KEY_ID": server.access_key,
                "AWS_SECRET_ACCESS_KEY": server.secret_key,
                "AWS_DEFAULT_REGION": server.region,
            }
            asyncio.run(measure(args, binaries, source, base, server.endpoint_url))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
