"""Chunked jobs spread over worker processes: wall time to COMPLETED, and time to first play.

Run through `bench/chunked.py --workers 1,2` (any list of counts). For each count N, N
`videoforge serve --role worker` processes (`transcode.workers = 1` each, each pinned to a core
of its own with `taskset`, so its ffmpeg runs there too) join one `videoforge serve --role api`
(`transcode.workers = 0`; embedded PostgreSQL, local storage) on one data dir, as a deployment's
containers share a database and a bucket. The generated source is uploaded and confirmed with
every quality; the job's worker plans the chunks, and every worker takes chunk tasks.

Measured per job, from its `createdAt` (the confirm):
- wall time to `completedAt` (both the server's clock): speed-up = wall(base) / wall(N) and
  efficiency = speed-up / (N / base), base being the smallest count (1 in `--workers 1,2`);
- time to first play: the first stream answer (`GET /api/gallery/videos/{id}/stream`, polled
  every 0.2 s) that says `"playable": true`, against the median time one chunk took to encode on
  one worker (the workers' "encoded in X s" log lines). A stream answer without `playable` is
  reported as no progressive playback, never as a time.
Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import aiohttp
from yarl import URL

BENCH_DIR = Path(__file__).resolve().parent


def _load(name: str, file: str) -> ModuleType:
    """Another bench script as a module, once (bench/http.py shadows `http` as a path)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench_http = _load("bench_http", "http.py")
bench_upload = _load("bench_upload", "upload.py")

QUALITIES = ("high", "medium", "low")
POLL_S = 0.2
AFTER_COMPLETED_S = 5.0  # how long the stream is still polled for once the job completed
ENCODED = re.compile(r"job (\d+) chunk (\d+): encoded in ([0-9.]+) s")
EFFICIENCY_GOAL = 0.8
FIRST_PLAY_GOAL = 1.5  # x the time one chunk takes on one worker
NO_PROGRESSIVE = "n/a (no progressive playback)"


class Api(Protocol):
    """`bench/upload.py`'s server handle."""

    port: int
    token: str

    def url(self, path: str) -> str: ...

    @property
    def headers(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path

    def chunk_seconds(self, job_id: int) -> list[float]:
        """How long each chunk of the job that this worker encoded took, from its log."""
        text = self.log.read_text(errors="replace")
        return [float(m[3]) for m in ENCODED.finditer(text) if int(m[1]) == job_id]


@dataclass(frozen=True)
class Followed:
    """What the client saw of one job, in seconds since its `createdAt`."""

    job: dict[str, Any]
    first_play_s: float | None
    progressive: bool  # some stream answer carried `playable` at all
    hls_status: int | None  # the master playlist's HTTP status at the first playable answer


@dataclass(frozen=True)
class JobRun:
    workers: int
    repeat: int
    wall_s: float
    chunks: int
    chunk_s: list[float]
    per_worker: list[int]
    first_play_s: float | None
    progressive: bool
    hls_status: int | None

    @property
    def one_chunk_s(self) -> float | None:
        return statistics.median(self.chunk_s) if self.chunk_s else None


# --- processes -------------------------------------------------------------------------------


@contextlib.contextmanager
def worker_processes(
    api: Api, data_dir: Path, count: int, env: dict[str, str], name: str
) -> Iterator[list[Worker]]:
    """`count` workers beside `api`, on its database and data dir, each pinned to one core."""
    cores = sorted(os.sched_getaffinity(0))
    workers: list[Worker] = []
    ports: list[int] = []
    try:
        for k in range(count):
            port = bench_http.free_port()
            core = cores[k % len(cores)]
            worker_env = env | {
                "VIDEOFORGE_SERVER_DATA_DIR": str(data_dir),
                "VIDEOFORGE_SERVER_LOG_LEVEL": "info",  # the chunks' "encoded in" lines
                "VIDEOFORGE_SERVER_PUBLIC_URL": api.url(""),
                "VIDEOFORGE_DATABASE_URL": bench_http.database_uri(data_dir / "pg"),
                "VIDEOFORGE_DATABASE_POOL_MAX_SIZE": "4",
                "VIDEOFORGE_TRANSCODE_WORKERS": "1",
                "VIDEOFORGE_TRANSCODE_TEMP_DIR": str(data_dir.parent / f"{name}-w{k}-tmp"),
            }
            argv = ["taskset", "-c", str(core), sys.executable, "-m", "videoforge"]
            argv += ["serve", "--role", "worker", "--port", str(port)]
            log = data_dir.parent / f"{name}-w{k}.log"
            workers.append(Worker(bench_http.start(argv, worker_env, data_dir.parent, log), log))
            ports.append(port)
        for worker, port in zip(workers, ports, strict=True):
            bench_http.wait_ready(worker.proc, port, "/api/health", worker.log)
        yield workers
    finally:
        for worker in workers:
            bench_http.stop(worker.proc)


def base_env(chunk: int) -> dict[str, str]:
    """This process's environment without our settings, plus the chunk length."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOFORGE_")}
    return env | {"VIDEOFORGE_TRANSCODE_CHUNK_SECONDS": str(chunk)}


# --- one job ---------------------------------------------------------------------------------


async def upload(
    http: aiohttp.ClientSession, api: Api, source: Path, size: int, title: str
) -> dict[str, Any]:
    """PUT the source to a signed URL and confirm it with every quality: the video record."""
    body = {"filename": source.name, "contentType": "video/mp4", "fileSize": size}
    async with http.post(api.url("/api/upload/generate-url"), json=body, headers=api.headers) as r:
        ticket = await bench_upload._json(r)
    data = bench_upload.file_chunks(source, 0, size)
    headers = {"Content-Type": "video/mp4", "Content-Length": str(size)}
    async with http.put(URL(ticket["uploadUrl"], encoded=True), data=data, headers=headers) as r:
        await bench_upload._ok(r)
    confirm = {"s3Key": ticket["s3Key"], "title": title, "transcode": list(QUALITIES)}
    async with http.post(api.url("/api/upload/confirm"), json=confirm, headers=api.headers) as r:
        video: dict[str, Any] = await bench_upload._json(r)
    return video


async def follow(
    http: aiohttp.ClientSession, api: Api, video: dict[str, Any], timeout: float
) -> Followed:
    """Poll the video's stream answer and its job until the job is COMPLETED (and the stream
    playable, for a few seconds more)."""
    stream_path = f"/api/gallery/videos/{video['id']}/stream"
    job_path = f"/api/jobs/{video['jobId']}"
    played_at: float | None = None
    progressive = False
    hls_status: int | None = None
    completed_at: float | None = None
    job: dict[str, Any] = {}
    async with asyncio.timeout(timeout):
        while completed_at is None or (
            played_at is None and progressive and time.time() - completed_at < AFTER_COMPLETED_S
        ):
            stream = await _get(http, api, stream_path)
            progressive = progressive or "playable" in stream
            if played_at is None and stream.get("playable") is True:
                played_at = time.time()
                async with http.get(URL(stream["hlsUrl"], encoded=True)) as r:
                    hls_status = r.status
            if completed_at is None:
                job = (await _get(http, api, job_path))["job"]
                if job["status"] in ("FAILED", "CANCELLED"):
                    raise RuntimeError(f"job {job['id']} {job['status']}: {job['errorText']}")
                if job["status"] == "COMPLETED":
                    completed_at = time.time()
            await asyncio.sleep(POLL_S)
    created = _epoch(job["createdAt"])
    first_play = None if played_at is None else played_at - created
    return Followed(job, first_play, progressive, hls_status)


async def _get(http: aiohttp.ClientSession, api: Api, path: str) -> dict[str, Any]:
    async with http.get(api.url(path), headers=api.headers) as r:
        body: dict[str, Any] = await bench_upload._json(r)
        return body


def _epoch(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def one_job(api: Api, source: Path, size: int, title: str, timeout: float) -> Followed:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
        video = await upload(http, api, source, size, title)
        return await follow(http, api, video, timeout)


def run_job(
    api: Api, data_dir: Path, source: Path, count: int, repeat: int, chunk: int, timeout: float
) -> JobRun:
    """One job of the source on `count` fresh workers."""
    name = f"r{repeat}-n{count}"
    with worker_processes(api, data_dir, count, base_env(chunk), name) as workers:
        size = source.stat().st_size
        followed = asyncio.run(one_job(api, source, size, f"{count} workers", timeout))
    job = followed.job
    per_worker = [w.chunk_seconds(job["id"]) for w in workers]
    run = JobRun(
        workers=count,
        repeat=repeat,
        wall_s=_epoch(job["completedAt"]) - _epoch(job["createdAt"]),
        chunks=job.get("chunks", {}).get("total", 0),
        chunk_s=[s for seconds in per_worker for s in seconds],
        per_worker=[len(seconds) for seconds in per_worker],
        first_play_s=followed.first_play_s,
        progressive=followed.progressive,
        hls_status=followed.hls_status,
    )
    print(f"  {describe(run)}", flush=True)
    if not run.chunks:
        print("  warning: the job was not chunked (a source of at most 2 chunks)", flush=True)
    if run.hls_status not in (None, 200):
        print(f"  warning: the first playable hlsUrl answered HTTP {run.hls_status}", flush=True)
    return run


def describe(run: JobRun) -> str:
    one = "n/a" if run.one_chunk_s is None else f"{run.one_chunk_s:.1f} s"
    spread = " / ".join(map(str, run.per_worker))
    return (
        f"repeat {run.repeat + 1}, {run.workers} worker(s): {run.wall_s:.1f} s to COMPLETED,"
        f" {run.chunks} chunks ({spread} per worker), one chunk {one} (median),"
        f" first play {_first_play(run)}"
    )


def _first_play(run: JobRun) -> str:
    if run.first_play_s is not None:
        return f"{run.first_play_s:.1f} s"
    return "never playable before COMPLETED" if run.progressive else NO_PROGRESSIVE


# --- the run and its table -------------------------------------------------------------------


def measure(
    base_dir: Path, source: Path, counts: Sequence[int], chunk: int, repeats: int, timeout: float
) -> list[JobRun]:
    """Every count's job per repeat, orders alternated, on one API."""
    cores = len(os.sched_getaffinity(0))
    if max(counts) > cores:
        print(f"warning: more workers than the {cores} cores: some share a core", flush=True)
    runs: list[JobRun] = []
    settings = {
        "VIDEOFORGE_TRANSCODE_WORKERS": "0",
        "VIDEOFORGE_TRANSCODE_CHUNK_SECONDS": str(chunk),
    }
    with bench_upload.api_server(base_dir, "data", settings) as api:
        for repeat in range(repeats):
            order = list(counts) if repeat % 2 == 0 else list(reversed(counts))
            for count in order:
                runs.append(run_job(api, base_dir / "data", source, count, repeat, chunk, timeout))
    return runs


def report(runs: Sequence[JobRun]) -> None:
    counts = sorted({r.workers for r in runs})
    base = counts[0]
    walls = {n: statistics.median(r.wall_s for r in runs if r.workers == n) for n in counts}
    print(
        f"\n| workers | wall s (median) | speed-up vs {base} | efficiency | chunks per worker"
        " | one chunk s (median) | first play s | first play / one chunk |"
    )
    print("|---:|---:|---:|---:|---|---:|---:|---:|")
    for n in counts:
        of_n = [r for r in runs if r.workers == n]
        speed_up = walls[base] / walls[n]
        efficiency = speed_up * base / n
        spread = ", ".join(" / ".join(map(str, r.per_worker)) for r in of_n)
        chunk_s = [s for r in of_n for s in r.chunk_s]
        one = statistics.median(chunk_s) if chunk_s else None
        plays = [r.first_play_s for r in of_n if r.first_play_s is not None]
        play = statistics.median(plays) if plays else None
        print(
            f"| {n} | {walls[n]:.1f} | {speed_up:.2f} | {efficiency:.2f} | {spread}"
            f" | {_seconds(one)} | {_seconds(play) if play is not None else _first_play(of_n[0])}"
            f" | {f'{play / one:.2f}' if play is not None and one else 'n/a'} |"
        )
    print(
        f"\ngoals: efficiency >= {EFFICIENCY_GOAL} (speed-up / N);"
        f" first play <= {FIRST_PLAY_GOAL} x one chunk"
    )


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"
