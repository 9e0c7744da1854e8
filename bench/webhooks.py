"""Webhook deliveries: how fast a worker drains the outbox, and what endpoints cost a job.

    .venv/bin/python bench/webhooks.py           # 2000 events; 10 s 720p jobs, 3 pairs
    .venv/bin/python bench/webhooks.py --quick   # 300 events; 4 s 480p jobs, 1 pair

The receiver is an aiohttp app in a process of its own (forked), on a free port: it answers 204
to every POST and counts the arrivals (by endpoint path, event type and `webhook-id`) with the
time of the first and the last; the bench reads its counts over HTTP.

1. Throughput. `videoforge serve --role api` (no delivery loop) on a fresh data dir registers 1
   endpoint (then, on another fresh dir, 10), and N `webhook.test` events are queued through
   `POST /api/webhooks/{id}/test`, 16 requests in flight, spread evenly over the endpoints.
   Only then does a `serve --role worker` (`transcode.workers = 0`) join it, on its embedded
   PostgreSQL and data dir, as chunked_workers.py's workers do. Figures: events/s =
   (N - 1) / (last arrival - first arrival), and the time from the worker's start (process
   launch, so its start-up is in it) to the last arrival; the worker's delivery counter and
   backlog gauge from its `/metrics` once the receiver has them all.
2. Job time. `serve --role all` with one worker slot runs one job (every quality) of a
   generated clip per run, alternately for a user without endpoints and for one with 10
   endpoints pointing at the receiver (the order flips every pair; one untimed warm-up job
   first). Figure: each job's completedAt - createdAt (the server's clock), their medians and
   the ratio ten / none (goal: no measurable change). A ten-endpoint run waits until its
   10 x 5 events (video.uploaded, job.started, job.completed, video.playable, video.ready)
   arrived, or 30 s passed, and prints what did.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.util
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
# Run as a path, this directory comes first on sys.path and bench/http.py shadows `http`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from videoforge.config import Config  # noqa: E402
from videoforge.transcode.binaries import locate_binaries  # noqa: E402


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
bench_transcode = _load("bench_transcode", "transcode.py")
bench_chunked_workers = _load("bench_chunked_workers", "chunked_workers.py")

Api = bench_upload.Api
WEBHOOK_ENV = {
    "VIDEOFORGE_WEBHOOKS_ALLOW_HTTP": "true",
    "VIDEOFORGE_WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "true",
}
IN_FLIGHT = 16  # test-event requests queued at once
POLL_S = 0.2
JOB_EVENTS = ("video.uploaded", "job.started", "job.completed", "video.playable", "video.ready")
ARRIVAL_GRACE_S = 30.0  # how long a job's events may trail its COMPLETED
DELIVERED = re.compile(r'^videoforge_webhook_deliveries_total\{result="(\w+)"\} ([0-9.e+]+)$', re.M)
BACKLOG = re.compile(r"^videoforge_webhook_backlog ([0-9.e+]+)$", re.M)


# --- the receiver ----------------------------------------------------------------------------


@dataclass
class Arrivals:
    """What the receiver counted: every POST, whatever its path."""

    count: int = 0
    first: float | None = None  # time.time() of the first and the last arrival
    last: float | None = None
    paths: Counter[str] = field(default_factory=Counter)
    types: Counter[str] = field(default_factory=Counter)
    ids: set[str] = field(default_factory=set)

    def as_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "first": self.first,
            "last": self.last,
            "paths": dict(self.paths),
            "types": dict(self.types),
            "unique": len(self.ids),
        }


def receiver_app() -> web.Application:
    """POST anywhere: 204, counted; GET /stats: the counts; DELETE /stats: start again."""
    arrivals = [Arrivals()]

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        now, seen = time.time(), arrivals[0]
        seen.count += 1
        seen.first = seen.first or now
        seen.last = now
        seen.paths[request.path] += 1
        with contextlib.suppress(ValueError, AttributeError):
            seen.types[str(json.loads(body).get("type"))] += 1
        seen.ids.add(request.headers.get("webhook-id", ""))
        return web.Response(status=204)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(arrivals[0].as_json())

    async def reset(request: web.Request) -> web.Response:
        arrivals[0] = Arrivals()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_delete("/stats", reset)
    app.router.add_post("/{tail:.*}", hook)
    return app


def _serve_receiver(port: int) -> None:
    web.run_app(receiver_app(), host="127.0.0.1", port=port, access_log=None, print=None)


@dataclass(frozen=True)
class Receiver:
    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    """The receiver in a forked process for the block (forked: no asyncio loop is running)."""
    port = bench_http.free_port()
    process = multiprocessing.get_context("fork").Process(
        target=_serve_receiver, args=(port,), name="webhook receiver", daemon=True
    )
    process.start()
    try:
        deadline = time.monotonic() + 30
        while not _answers(port):
            if not process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the receiver did not start (exit code {process.exitcode})")
            time.sleep(0.05)
        yield Receiver(port)
    finally:
        process.terminate()
        process.join(10)


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError, ValueError, IndexError):
        status: int = bench_http.http_get(port, "/stats", timeout=1.0)[0]
        return status == 200
    return False


async def arrivals(http: aiohttp.ClientSession, rx: Receiver) -> dict[str, Any]:
    async with http.get(rx.url("/stats")) as r:
        stats: dict[str, Any] = await bench_upload._json(r)
        return stats


async def wait_arrivals(
    http: aiohttp.ClientSession, rx: Receiver, count: int, timeout: float
) -> dict[str, Any]:
    """The receiver's counts once `count` POSTs arrived, or when `timeout` s passed."""
    deadline = time.monotonic() + timeout
    while True:
        stats = await arrivals(http, rx)
        if stats["count"] >= count or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(POLL_S)


# --- servers ---------------------------------------------------------------------------------


def _env(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without our settings, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOFORGE_")}
    return env | {"VIDEOFORGE_SERVER_LOG_LEVEL": "warning", **WEBHOOK_ENV, **settings}


@contextlib.contextmanager
def server(
    base_dir: Path, name: str, role: str, settings: dict[str, str], users: Sequence[str]
) -> Iterator[list[Any]]:
    """`videoforge serve --role ROLE` on the fresh data dir `base_dir/name`; an Api per user."""
    data_dir = base_dir / name
    env = _env({"VIDEOFORGE_SERVER_DATA_DIR": str(data_dir), **settings})
    base = [sys.executable, "-m", "videoforge"]
    port = bench_http.free_port()
    log = base_dir / f"{name}.log"
    proc = bench_http.start(
        [*base, "serve", "--role", role, "--port", str(port)], env, base_dir, log
    )
    try:
        bench_http.wait_ready(proc, port, "/api/health", log)
        yield [Api(port, proc.pid, _token(base, env, base_dir, user)) for user in users]
    finally:
        bench_http.stop(proc)
        bench_http.stop_leftover_postgres(data_dir / "pg")


def _token(base: list[str], env: dict[str, str], cwd: Path, user: str) -> str:
    argv = [*base, "token", "--user", user]
    out = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    out.check_returncode()
    return out.stdout.split()[-1]


@dataclass(frozen=True)
class Worker:
    port: int
    started: float  # time.time() just before the process was launched
    ready: float  # ... and when its /api/health first answered 200

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextlib.contextmanager
def delivery_worker(api: Any, data_dir: Path, name: str) -> Iterator[Worker]:
    """A `serve --role worker` without job slots beside `api`, on its database and data dir."""
    env = _env(
        {
            "VIDEOFORGE_SERVER_DATA_DIR": str(data_dir),
            "VIDEOFORGE_SERVER_PUBLIC_URL": api.url(""),
            "VIDEOFORGE_DATABASE_URL": bench_http.database_uri(data_dir / "pg"),
            "VIDEOFORGE_TRANSCODE_WORKERS": "0",
            "VIDEOFORGE_TRANSCODE_TEMP_DIR": str(data_dir.parent / f"{name}-tmp"),
        }
    )
    port = bench_http.free_port()
    log = data_dir.parent / f"{name}.log"
    argv = [sys.executable, "-m", "videoforge", "serve", "--role", "worker", "--port", str(port)]
    started = time.time()
    proc = bench_http.start(argv, env, data_dir.parent, log)
    try:
        bench_http.wait_ready(proc, port, "/api/health", log)
        yield Worker(port, started, time.time())
    finally:
        bench_http.stop(proc)


async def delivery_metrics(http: aiohttp.ClientSession, url: str) -> tuple[dict[str, int], int]:
    """Delivery attempts by result, and the backlog, from a process's `/metrics`."""
    async with http.get(url) as r:
        text = await r.text()
    results = {m[1]: int(float(m[2])) for m in DELIVERED.finditer(text)}
    backlog = BACKLOG.search(text)
    return results, int(float(backlog[1])) if backlog else -1


# --- endpoints and test events ---------------------------------------------------------------


async def register(
    http: aiohttp.ClientSession, api: Any, rx: Receiver, count: int, tag: str
) -> list[int]:
    """`count` endpoints of api's user, each at a path of its own on the receiver; their ids."""
    ids = []
    for k in range(count):
        body = {"url": rx.url(f"/hooks/{tag}-{k}"), "description": f"bench {tag} {k}"}
        async with http.post(api.url("/api/webhooks"), json=body, headers=api.headers) as r:
            ids.append(int((await bench_upload._json(r))["webhook"]["id"]))
    return ids


async def queue_tests(http: aiohttp.ClientSession, api: Any, ids: Sequence[int], n: int) -> float:
    """Queue `n` webhook.test events over the endpoints in turn, IN_FLIGHT at once; seconds."""
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(endpoint: int) -> None:
        async with (
            gate,
            http.post(api.url(f"/api/webhooks/{endpoint}/test"), headers=api.headers) as r,
        ):
            await bench_upload._ok(r)

    started = time.perf_counter()
    await asyncio.gather(*(one(ids[i % len(ids)]) for i in range(n)))
    return time.perf_counter() - started


async def delivery_statuses(http: aiohttp.ClientSession, api: Any, endpoint: int) -> Counter[str]:
    """The statuses of the endpoint's latest 100 deliveries, as its owner sees them."""
    path = f"/api/webhooks/{endpoint}/deliveries?limit=100"
    async with http.get(api.url(path), headers=api.headers) as r:
        deliveries = (await bench_upload._json(r))["deliveries"]
    return Counter(str(d["status"]) for d in deliveries)


# --- 1. throughput ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    endpoints: int
    events: int
    queue_s: float
    arrived: int
    unique: int
    worker_ready_s: float  # from the worker's launch
    first_s: float | None  # first arrival, from the worker's launch
    last_s: float | None
    results: dict[str, int]
    backlog: int
    statuses: Counter[str]

    @property
    def events_per_s(self) -> float | None:
        if self.first_s is None or self.last_s is None or self.last_s <= self.first_s:
            return None
        return (self.arrived - 1) / (self.last_s - self.first_s)


def measure_throughput(base_dir: Path, rx: Receiver, endpoints: int, n: int) -> Throughput:
    """N test events queued on an API alone, then drained by a worker that joins it."""
    name = f"throughput-{endpoints}"
    with server(base_dir, name, "api", {}, ["bench"]) as (api,):
        ids, queue_s = asyncio.run(_queue(api, rx, endpoints, n, name))
        with delivery_worker(api, base_dir / name, f"{name}-worker") as worker:
            return asyncio.run(_drain(api, rx, worker, ids, n, queue_s))


async def _queue(
    api: Any, rx: Receiver, endpoints: int, n: int, tag: str
) -> tuple[list[int], float]:
    async with aiohttp.ClientSession() as http:
        async with http.delete(rx.url("/stats")) as r:
            await bench_upload._ok(r)
        ids = await register(http, api, rx, endpoints, tag)
        return ids, await queue_tests(http, api, ids, n)


async def _drain(
    api: Any, rx: Receiver, worker: Worker, ids: list[int], n: int, queue_s: float
) -> Throughput:
    async with aiohttp.ClientSession() as http:
        stats = await wait_arrivals(http, rx, n, timeout=max(120.0, n / 5))
        results, backlog = await delivery_metrics(http, worker.url("/metrics"))
        statuses = await delivery_statuses(http, api, ids[0])
    return Throughput(
        endpoints=len(ids),
        events=n,
        queue_s=queue_s,
        arrived=stats["count"],
        unique=stats["unique"],
        worker_ready_s=worker.ready - worker.started,
        first_s=None if stats["first"] is None else stats["first"] - worker.started,
        last_s=None if stats["last"] is None else stats["last"] - worker.started,
        results=results,
        backlog=backlog,
        statuses=statuses,
    )


def report_throughput(rows: Sequence[Throughput]) -> None:
    print(
        "\n| endpoints | events | queued in s (events/s) | arrived (unique) | worker ready s"
        " | first arrival s | last arrival s | events/s first-last | worker metrics | backlog |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for t in rows:
        rate = "n/a" if t.events_per_s is None else f"{t.events_per_s:,.0f}"
        results = ", ".join(f"{k} {v}" for k, v in sorted(t.results.items())) or "none"
        print(
            f"| {t.endpoints} | {t.events} | {t.queue_s:.1f} ({t.events / t.queue_s:,.0f})"
            f" | {t.arrived} ({t.unique}) | {t.worker_ready_s:.1f} | {_s(t.first_s)}"
            f" | {_s(t.last_s)} | {rate} | {results} | {t.backlog} |"
        )
    for t in rows:
        tally = ", ".join(f"{k} {v}" for k, v in sorted(t.statuses.items()))
        print(f"{t.endpoints} endpoint(s): the first endpoint's latest 100 deliveries: {tally}")


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


# --- 2. job time with and without endpoints --------------------------------------------------


@dataclass(frozen=True)
class JobRun:
    side: str  # "none" or "ten"
    pair: int
    wall_s: float  # completedAt - createdAt
    arrived: int  # receiver POSTs during the run (and its grace)
    types: dict[str, int]
    paths: int  # endpoint paths that received anything


async def run_job(
    api: Any, rx: Receiver, source: Path, side: str, pair: int, hooks: int, timeout: float
) -> JobRun:
    """One job of every quality; with `hooks` endpoints, wait for their events to arrive."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
        before = await arrivals(http, rx)
        size = await asyncio.to_thread(lambda: source.stat().st_size)
        video = await bench_chunked_workers.upload(http, api, source, size, f"{side} {pair}")
        job = await _completed(http, api, video["jobId"], timeout)
        expected = before["count"] + hooks * len(JOB_EVENTS)
        after = await wait_arrivals(http, rx, expected, ARRIVAL_GRACE_S if hooks else 1.0)
    types = Counter(after["types"])
    types.subtract(before["types"])
    paths = Counter(after["paths"])
    paths.subtract(before["paths"])
    return JobRun(
        side=side,
        pair=pair,
        wall_s=_epoch(job["completedAt"]) - _epoch(job["createdAt"]),
        arrived=after["count"] - before["count"],
        types={k: v for k, v in types.items() if v},
        paths=sum(1 for v in paths.values() if v),
    )


async def _completed(
    http: aiohttp.ClientSession, api: Any, job_id: int, timeout: float
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            async with http.get(api.url(f"/api/jobs/{job_id}"), headers=api.headers) as r:
                job: dict[str, Any] = (await bench_upload._json(r))["job"]
            if job["status"] == "COMPLETED":
                return job
            if job["status"] in ("FAILED", "CANCELLED"):
                raise RuntimeError(f"job {job_id} {job['status']}: {job.get('errorText')}")
            await asyncio.sleep(POLL_S)


def _epoch(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def measure_jobs(
    base_dir: Path, rx: Receiver, source: Path, pairs: int, timeout: float
) -> list[JobRun]:
    """Alternate jobs of a user without endpoints and of one with ten, on one server."""
    settings = {
        "VIDEOFORGE_TRANSCODE_WORKERS": "1",
        "VIDEOFORGE_LIMITS_UPLOAD_URLS_PER_MINUTE": "1000",
    }
    with server(base_dir, "jobs", "all", settings, ["bench-none", "bench-ten"]) as (none, ten):
        asyncio.run(_register_ten(ten, rx))
        asyncio.run(run_job(none, rx, source, "warm-up", 0, 0, timeout))
        runs = []
        for pair in range(pairs):
            order = ("none", "ten") if pair % 2 == 0 else ("ten", "none")
            for side in order:
                api, hooks = (ten, 10) if side == "ten" else (none, 0)
                run = asyncio.run(run_job(api, rx, source, side, pair, hooks, timeout))
                print(f"  {describe(run)}", flush=True)
                runs.append(run)
    return runs


async def _register_ten(api: Any, rx: Receiver) -> None:
    async with aiohttp.ClientSession() as http:
        await register(http, api, rx, 10, "jobs")


def describe(run: JobRun) -> str:
    types = ", ".join(f"{k} {v}" for k, v in sorted(run.types.items())) or "none"
    expected = 10 * len(JOB_EVENTS) if run.side == "ten" else 0
    return (
        f"pair {run.pair + 1}, {run.side:>4} endpoints: {run.wall_s:.2f} s createdAt ->"
        f" completedAt; events arrived {run.arrived} of {expected} at {run.paths} endpoint(s)"
        f" ({types})"
    )


def report_jobs(runs: Sequence[JobRun]) -> None:
    medians = {s: statistics.median(r.wall_s for r in runs if r.side == s) for s in ("none", "ten")}
    pairs = sorted({r.pair for r in runs})
    paired = [
        next(r.wall_s for r in runs if r.pair == p and r.side == "ten")
        / next(r.wall_s for r in runs if r.pair == p and r.side == "none")
        for p in pairs
    ]
    arrived = sum(r.arrived for r in runs if r.side == "ten")
    expected = 10 * len(JOB_EVENTS) * len(pairs)
    print("\n| endpoints | runs s | median s |")
    print("|---|---|---:|")
    for side in ("none", "ten"):
        walls = ", ".join(f"{r.wall_s:.2f}" for r in runs if r.side == side)
        print(f"| {side} | {walls} | {medians[side]:.2f} |")
    print(
        f"\nten / none: {medians['ten'] / medians['none']:.3f} (medians);"
        f" per pair {', '.join(f'{x:.3f}' for x in paired)} (goal: no measurable change)"
    )
    print(f"ten-endpoint runs: {arrived} of {expected} events arrived (10 x 5 per job)")


# --- main ------------------------------------------------------------------------------------


def make_clip(base_dir: Path, quick: bool) -> tuple[Path, float]:
    """The job's source (generated as bench/transcode.py makes its clips) and a job timeout."""
    seconds, size = (4.0, "854x480") if quick else (10.0, "1280x720")
    settings = bench_transcode.Settings(
        quick=quick,
        repeats=1,
        seconds=seconds,
        noise=bench_transcode.CLIP_NOISE,
        base_dir=base_dir,
        binaries=locate_binaries(Config()),
        readme=False,
    )
    print(f"clip: {seconds:g} s of {size} at {bench_transcode.CLIP_FPS} fps, grain, a tone")
    path = bench_transcode.generate_clip(settings, "source.mp4", size, seconds, settings.noise)
    return path, settings.timeout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="300 events; 4 s 480p, 1 pair")
    parser.add_argument("--events", type=int, help="test events queued (default 2000)")
    parser.add_argument("--pairs", type=int, help="none/ten job pairs (default 3)")
    args = parser.parse_args()
    events = args.events or (300 if args.quick else 2000)
    pairs = args.pairs or (1 if args.quick else 3)
    cores = len(os.sched_getaffinity(0))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    version = bench_http._source_version()
    print(f"machine: {cores} cores, {bench_http._cpu_model()}, load average {load}")
    print(f"videoforge {version}")
    base_dir = Path(tempfile.mkdtemp(prefix="vf-webhooks-bench-"))
    # The embedded PostgreSQL runs as another system user: it must traverse this directory.
    base_dir.chmod(0o755)
    try:
        with receiver() as rx:
            print(
                f"\n1. throughput: {events} webhook.test events, drained by one worker", flush=True
            )
            rows = [measure_throughput(base_dir, rx, k, events) for k in (1, 10)]
            report_throughput(rows)
            print(f"\n2. job time, none / ten endpoints, {pairs} pair(s)", flush=True)
            source, timeout = make_clip(base_dir, args.quick)
            report_jobs(measure_jobs(base_dir, rx, source, pairs, timeout))
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
