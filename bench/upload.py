"""Upload benchmark: one PUT against multipart uploads with 1, 4 and 8 parts in flight.

    .venv/bin/python bench/upload.py              # a 1 GiB file, local storage and SeaweedFS
    .venv/bin/python bench/upload.py --size 256   # a smaller file (MiB)
    .venv/bin/python bench/upload.py --local-only # no SeaweedFS

For each backend, `videoforge serve --role api` runs on a fresh data dir and the bytes go to the
URLs it signs, as a browser's would (straight to storage: for local storage that is the server
itself). The baselines are a plain disk copy of the same file (`cp`) and, for S3, aiobotocore's
own multipart upload of it to the same bucket (16 MiB parts, 8 in flight), so the figures are
ratios to what the machine and the store can do. Also measured: the API process's RSS growth
while the file goes up through local storage (one PUT and multipart), and what resuming costs:
an upload stopped once half its bytes are sent, then resumed from the listed parts, counts the
bytes it sent twice. Figures are printed, never asserted (bench/README.md holds the latest).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]
sys.path.insert(0, str(REPO))  # the tests' SeaweedFS runner

import aiohttp  # noqa: E402
from aiobotocore.session import get_session  # noqa: E402
from yarl import URL  # noqa: E402

MiB = 1024 * 1024
PART_BYTES = 16 * MiB
CHUNK = MiB
BASE = "/api/uploads/s3/multipart"


def _load_http_helpers() -> ModuleType:
    """bench/http.py as the module `bench_http` (its process helpers are reused)."""
    spec = importlib.util.spec_from_file_location("bench_http", BENCH_DIR / "http.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench_http = _load_http_helpers()


@dataclass(frozen=True)
class Api:
    port: int
    pid: int
    token: str

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextlib.contextmanager
def api_server(base_dir: Path, name: str, storage_env: dict[str, str]) -> Iterator[Api]:
    """`videoforge serve --role api` on a fresh data dir, and a token for its user."""
    data_dir = base_dir / name
    port = bench_http.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOFORGE_")}
    env |= {
        "VIDEOFORGE_SERVER_DATA_DIR": str(data_dir),
        "VIDEOFORGE_SERVER_LOG_LEVEL": "warning",
        "VIDEOFORGE_LIMITS_UPLOAD_URLS_PER_MINUTE": "1000",
        **storage_env,
    }
    base = [sys.executable, "-m", "videoforge"]
    log = base_dir / f"{name}.log"
    argv = [*base, "serve", "--role", "api", "--port", str(port)]
    proc = bench_http.start(argv, env, base_dir, log)
    try:
        bench_http.wait_ready(proc, port, "/api/health", log)
        token = subprocess.run(
            [*base, "token", "--user", "bench"],
            env=env,
            cwd=base_dir,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()[-1]
        yield Api(port, proc.pid, token)
    finally:
        bench_http.stop(proc)
        bench_http.stop_leftover_postgres(data_dir / "pg")


# --- uploads ---------------------------------------------------------------------------------


async def file_chunks(path: Path, offset: int, length: int) -> AsyncIterator[bytes]:
    """`length` bytes of `path` from `offset`, read in a thread a chunk at a time."""
    with path.open("rb") as fh:
        fh.seek(offset)
        left = length
        while left:
            chunk = await asyncio.to_thread(fh.read, min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


async def single_put(http: aiohttp.ClientSession, api: Api, path: Path, size: int) -> None:
    body = {"filename": "bench.mp4", "contentType": "video/mp4", "fileSize": size}
    async with http.post(api.url("/api/upload/generate-url"), json=body, headers=api.headers) as r:
        ticket = await _json(r)
    headers = {"Content-Type": "video/mp4", "Content-Length": str(size)}
    data = file_chunks(path, 0, size)
    async with http.put(URL(ticket["uploadUrl"], encoded=True), data=data, headers=headers) as r:
        await _ok(r)


@dataclass
class Multipart:
    """One multipart upload of `path` through the API, counting the part bytes it sends."""

    http: aiohttp.ClientSession
    api: Api
    path: Path
    size: int
    key: str = ""
    upload_id: str = ""
    sent: int = 0
    half_sent: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def numbers(self) -> list[int]:
        return list(range(1, -(-self.size // PART_BYTES) + 1))

    async def start(self) -> None:
        body = {"filename": "bench.mp4", "type": "video/mp4", "size": self.size}
        async with self.http.post(self.api.url(BASE), json=body, headers=self.api.headers) as r:
            started = await _json(r)
        self.key, self.upload_id = started["key"], started["uploadId"]

    async def stored(self) -> dict[int, str]:
        path = f"{BASE}/{self.upload_id}"
        query = {"key": self.key}
        async with self.http.get(self.api.url(path), params=query, headers=self.api.headers) as r:
            return {part["PartNumber"]: part["ETag"] for part in await _json(r)}

    async def send(self, numbers: list[int], concurrency: int) -> dict[int, str]:
        """PUT these parts, `concurrency` at a time; their ETags."""
        path = f"{BASE}/{self.upload_id}/batch"
        query = {"key": self.key, "partNumbers": ",".join(map(str, numbers))}
        async with self.http.get(self.api.url(path), params=query, headers=self.api.headers) as r:
            urls = (await _json(r))["presignedUrls"]
        gate = asyncio.Semaphore(concurrency)

        async def put(number: int) -> tuple[int, str]:
            async with gate:
                offset = (number - 1) * PART_BYTES
                length = min(PART_BYTES, self.size - offset)
                data = self._counted(file_chunks(self.path, offset, length))
                headers = {"Content-Length": str(length)}
                url = URL(urls[str(number)], encoded=True)
                async with self.http.put(url, data=data, headers=headers) as r:
                    await _ok(r)
                    return number, r.headers["ETag"]

        return dict(await asyncio.gather(*(put(n) for n in numbers)))

    async def _counted(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self.sent += len(chunk)
            if self.sent >= self.size // 2:
                self.half_sent.set()
            yield chunk

    async def complete(self, etags: dict[int, str]) -> None:
        path = f"{BASE}/{self.upload_id}/complete"
        parts = [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
        url = self.api.url(path)
        query = {"key": self.key}
        body = {"parts": parts}
        async with self.http.post(url, params=query, json=body, headers=self.api.headers) as r:
            await _json(r)

    async def run(self, concurrency: int) -> None:
        await self.start()
        await self.complete(await self.send(self.numbers, concurrency))


async def resumed_upload(upload: Multipart, concurrency: int) -> int:
    """Bytes sent twice by an upload stopped when half its bytes were sent, then resumed."""
    await upload.start()
    sending = asyncio.create_task(upload.send(upload.numbers, concurrency))
    await upload.half_sent.wait()
    sending.cancel()
    with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
        await sending
    done = await upload.stored()
    missing = [n for n in upload.numbers if n not in done]
    await upload.complete({**done, **await upload.send(missing, concurrency)})
    return upload.sent - upload.size


async def aiobotocore_upload(
    path: Path, size: int, bucket: str, endpoint: str, concurrency: int
) -> None:
    """The same file through aiobotocore itself: create, UploadPart in parallel, complete."""
    session = get_session()
    async with session.create_client("s3", endpoint_url=endpoint, region_name="us-east-1") as s3:
        target = {"Bucket": bucket, "Key": "baseline/bench.mp4"}
        upload_id = (await s3.create_multipart_upload(**target))["UploadId"]
        gate = asyncio.Semaphore(concurrency)

        async def part(number: int) -> dict[str, Any]:
            async with gate:
                offset = (number - 1) * PART_BYTES
                with path.open("rb") as fh:
                    fh.seek(offset)
                    body = await asyncio.to_thread(fh.read, PART_BYTES)
                r = await s3.upload_part(**target, UploadId=upload_id, PartNumber=number, Body=body)
                return {"PartNumber": number, "ETag": r["ETag"]}

        numbers = range(1, -(-size // PART_BYTES) + 1)
        parts = await asyncio.gather(*(part(n) for n in numbers))
        await s3.complete_multipart_upload(
            **target, UploadId=upload_id, MultipartUpload={"Parts": list(parts)}
        )


async def _json(response: aiohttp.ClientResponse) -> Any:
    await _ok(response)
    return await response.json()


async def _ok(response: aiohttp.ClientResponse) -> None:
    if response.status >= 300:
        text = await response.text()
        raise RuntimeError(f"{response.method} {response.url}: {response.status} {text}")


# --- measuring -------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def peak_rss(pid: int) -> Iterator[Callable[[], int]]:
    """The process's highest RSS growth over the block, sampled every 20 ms."""
    start = rss_bytes(pid)
    peak = [start]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], rss_bytes(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield lambda: peak[0] - start
    finally:
        stop.set()
        sampler.join()


@dataclass
class Row:
    backend: str
    method: str
    seconds: float
    size: int
    rss_growth: int | None = None

    @property
    def mib_s(self) -> float:
        return self.size / MiB / self.seconds


async def timed(coro: Any) -> float:
    started = time.perf_counter()
    await coro
    return time.perf_counter() - started


def copy_seconds(path: Path) -> float:
    target = path.with_name("copy.bin")
    started = time.perf_counter()
    subprocess.run(["cp", str(path), str(target)], check=True)
    os.sync()
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed


async def measure_backend(
    name: str, api: Api, path: Path, size: int, s3: tuple[str, str] | None
) -> tuple[list[Row], int]:
    rows = []
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        with peak_rss(api.pid) as growth:
            rows.append(
                Row(name, "single PUT", await timed(single_put(http, api, path, size)), size)
            )
        rows[-1].rss_growth = growth()
        for concurrency in (1, 4, 8):
            with peak_rss(api.pid) as growth:
                seconds = await timed(Multipart(http, api, path, size).run(concurrency))
            rows.append(Row(name, f"multipart x{concurrency}", seconds, size, growth()))
        resent = await resumed_upload(Multipart(http, api, path, size), 4)
    if s3 is not None:
        seconds = await timed(aiobotocore_upload(path, size, *s3, 8))
        rows.append(Row(name, "aiobotocore x8 (baseline)", seconds, size))
    return rows, resent


def report(rows: list[Row], copy: float, size: int, resent: dict[str, int]) -> None:
    print(f"\nfile: {size / MiB:.0f} MiB, parts of {PART_BYTES // MiB} MiB")
    print(f"cp (baseline): {copy:.2f} s, {size / MiB / copy:.0f} MiB/s")
    print("| backend | method | seconds | MiB/s | vs cp | API RSS growth |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        growth = "" if row.rss_growth is None else f"{row.rss_growth / MiB:.1f} MiB"
        print(
            f"| {row.backend} | {row.method} | {row.seconds:.2f} | {row.mib_s:.0f} | "
            f"{copy / row.seconds:.2f} | {growth} |"
        )
    for backend, extra in resent.items():
        print(
            f"resume after 50% ({backend}, 4 in flight): {extra / MiB:.1f} MiB sent twice "
            f"(at most one part per stream: {4 * PART_BYTES / MiB:.0f} MiB)"
        )


def make_file(path: Path, size: int) -> None:
    with path.open("wb") as fh:
        block = os.urandom(PART_BYTES)
        written = 0
        while written < size:
            chunk = block[: size - written]
            fh.write(chunk)
            written += len(chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument("--local-only", action="store_true", help="skip SeaweedFS")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    version = bench_http._source_version()
    print(f"machine: {cores} cores, {bench_http._cpu_model()}; videoforge {version}")
    base_dir = Path(tempfile.mkdtemp(prefix="vf-upload-bench-"))
    try:
        path = base_dir / "source.bin"
        size = args.size * MiB
        make_file(path, size)
        copy = copy_seconds(path)
        rows, resent = [], {}
        with api_server(base_dir, "local", {}) as api:
            local_rows, resent["local"] = asyncio.run(
                measure_backend("local", api, path, size, None)
            )
            rows += local_rows
        if not args.local_only:
            rows += measure_s3(base_dir, path, size, resent)
        report(rows, copy, size, resent)
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)


def measure_s3(base_dir: Path, path: Path, size: int, resent: dict[str, int]) -> list[Row]:
    from tests.fixtures.s3 import run_seaweedfs

    weed_dir = base_dir / "seaweedfs"
    weed_dir.mkdir()
    with run_seaweedfs(weed_dir) as (server, _):
        os.environ |= {
            "AWS_ACCESS_KEY_ID": server.access_key,
            "AWS_SECRET_ACCESS_KEY": server.secret_key,
            "AWS_DEFAULT_REGION": server.region,
        }
        storage = {
            "VIDEOFORGE_STORAGE_BACKEND": "s3",
            "VIDEOFORGE_STORAGE_BUCKET": "bench",
            "VIDEOFORGE_STORAGE_ENDPOINT_URL": server.endpoint_url,
            "VIDEOFORGE_STORAGE_REGION": server.region,
            "VIDEOFORGE_STORAGE_CREATE_BUCKET": "true",
        }
        with api_server(base_dir, "s3", storage) as api:
            s3 = ("bench", server.endpoint_url)
            rows, resent["s3"] = asyncio.run(measure_backend("SeaweedFS", api, path, size, s3))
    return rows


if __name__ == "__main__":
    main()
