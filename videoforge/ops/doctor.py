"""`videoforge doctor`: check every component the configuration names, and say what is wrong
(or, with a warning that does not fail it, what would break one feature)."""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from videoforge.cache import create_cache
from videoforge.config import Config
from videoforge.db import check_database, open_database
from videoforge.errors import VideoforgeError
from videoforge.queue.checks import check_queue
from videoforge.storage import create_storage
from videoforge.storage.s3 import S3Storage
from videoforge.transcode.binaries import binary_version, locate

CHECK_TIMEOUT = 30.0


class Report:
    """Prints one line per component and remembers whether any failed."""

    def __init__(self) -> None:
        self.failed = False

    async def run(
        self, name: str, check: Callable[[], Awaitable[str | None]], *, warn_only: bool = False
    ) -> None:
        """Run `check`; if it raises, a FAIL line, or a WARN line that fails nothing."""
        try:
            detail = await asyncio.wait_for(check(), CHECK_TIMEOUT)
        except Exception as exc:
            if warn_only:
                self.line("WARN", name, _describe(exc))
            else:
                self.fail(name, exc)
        else:
            self.line("ok", name, detail or "")

    def fail(self, name: str, exc: BaseException) -> None:
        self.failed = True
        self.line("FAIL", name, _describe(exc))

    @staticmethod
    def line(verdict: str, name: str, detail: str) -> None:
        print(f"{verdict:<6}{name:<10}{detail}", flush=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, VideoforgeError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT:g} s"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def run_doctor(config: Config) -> int:
    """Exit status 0 when everything works, 1 when something does not."""
    report = Report()
    await report.run("ffmpeg", lambda: _check_binary("ffmpeg", config.transcode.ffmpeg))
    await report.run("ffprobe", lambda: _check_binary("ffprobe", config.transcode.ffprobe))
    await _check_database_and_queue(config, report)
    await report.run("storage", lambda: _check_storage(config))
    if config.storage.backend == "s3":
        await report.run("cors", lambda: check_bucket_cors(config), warn_only=True)
    await report.run("cache", lambda: _check_cache(config))
    return 1 if report.failed else 0


async def _check_binary(name: str, configured: str) -> str:
    path = locate(name, configured)
    return f"{await binary_version(path)} ({path})"


async def _check_database_and_queue(config: Config, report: Report) -> None:
    # The postgres queue lives in the database, so it is checked while the pool is open.
    try:
        async with open_database(config) as pool:
            await report.run("database", lambda: _describe_database(config, pool))
            await report.run("queue", lambda: _check_queue(config, pool))
    except Exception as exc:
        report.fail("database", exc)
        await report.run("queue", lambda: _check_queue(config, None))


async def _describe_database(config: Config, pool: asyncpg.Pool) -> str:
    await check_database(pool)
    version = await pool.fetchval("SHOW server_version")
    where = "configured" if config.database.url else "embedded"
    return f"PostgreSQL {version} ({where})"


async def _check_queue(config: Config, pool: asyncpg.Pool | None) -> str:
    await check_queue(config.queue, pool)
    return f"{config.queue.backend} queue reachable"


async def _check_storage(config: Config) -> str:
    async with create_storage(config) as storage:
        await storage.check()
    where = config.storage.bucket if config.storage.backend == "s3" else "data_dir/storage"
    return f"{config.storage.backend} ({where})"


class CorsProblem(VideoforgeError):
    """The bucket's CORS rules keep browsers from uploading parts to it"""


async def check_bucket_cors(config: Config) -> str:
    """Raise `CorsProblem` unless the S3 bucket lets the site's pages PUT upload parts
    straight to it and read each part's ETag (which completing the upload needs)."""
    origin = site_origin(config.server.base_url)
    async with create_storage(config) as storage:
        assert isinstance(storage, S3Storage)
        rules = await storage.cors_rules()
    problem = cors_problem(rules, origin)
    if problem is not None:
        raise CorsProblem(f"{problem}: browsers cannot upload to bucket {config.storage.bucket!r}")
    return f"{origin} may PUT parts and read their ETag"


def site_origin(url: str) -> str:
    """The origin (scheme, host and port) of a URL, as a browser sends it."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def cors_problem(rules: Sequence[Mapping[str, Any]], origin: str) -> str | None:
    """What is wrong with these CORS rules for PUTs from `origin`; None if nothing. The store
    answers with the first rule matching the origin and method, as S3 does."""
    if not rules:
        return "the bucket has no CORS rules"
    rule = next((r for r in rules if _allows(r, origin, "PUT")), None)
    if rule is None:
        return f"no CORS rule allows PUT from {origin}"
    exposed = {header.lower() for header in rule.get("ExposeHeaders", ())}
    if not exposed & {"etag", "*"}:
        return f"the CORS rule allowing PUT from {origin} does not expose ETag"
    return None


def _allows(rule: Mapping[str, Any], origin: str, method: str) -> bool:
    # S3 allows one `*` wildcard in an allowed origin (`https://*.example.com`).
    origins = (pattern.lower() for pattern in rule.get("AllowedOrigins", ()))
    return method in rule.get("AllowedMethods", ()) and any(
        fnmatch.fnmatchcase(origin, pattern) for pattern in origins
    )


async def _check_cache(config: Config) -> str:
    cache = create_cache(config)
    try:
        await cache.ping()
    finally:
        await cache.close()
    return "redis" if config.cache.url else "in-process"
