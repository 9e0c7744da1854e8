"""Every piece of typed application state, in one greppable place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    import asyncpg

    from videoforge.auth.sessions import Sessions
    from videoforge.auth.tokens import Authenticator, Principal
    from videoforge.cache import Cache
    from videoforge.config import Config
    from videoforge.gallery import Gallery
    from videoforge.gallery.multipart import MultipartUploads
    from videoforge.jobs.service import Jobs
    from videoforge.jobs.worker import WorkerPool
    from videoforge.ops.health import HealthCheck
    from videoforge.ops.metrics import Metrics
    from videoforge.queue import JobQueue
    from videoforge.storage import Storage
    from videoforge.transcode.binaries import Binaries
    from videoforge.webhooks.service import Webhooks

CONFIG: web.AppKey[Config] = web.AppKey("config")
ROLE: web.AppKey[str] = web.AppKey("role")
DB: web.AppKey[asyncpg.Pool] = web.AppKey("db")
STORAGE: web.AppKey[Storage] = web.AppKey("storage")
CACHE: web.AppKey[Cache] = web.AppKey("cache")
AUTH: web.AppKey[Authenticator] = web.AppKey("auth")
SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions")
PAGE_HEADERS: web.AppKey[dict[str, str]] = web.AppKey("page_headers")
GALLERY: web.AppKey[Gallery] = web.AppKey("gallery")
UPLOADS: web.AppKey[MultipartUploads] = web.AppKey("uploads")
HEALTH_CHECKS: web.AppKey[dict[str, HealthCheck]] = web.AppKey("health_checks")
FFMPEG: web.AppKey[Binaries] = web.AppKey("ffmpeg")
QUEUE: web.AppKey[JobQueue] = web.AppKey("queue")
JOBS: web.AppKey[Jobs] = web.AppKey("jobs")
WORKERS: web.AppKey[WorkerPool] = web.AppKey("workers")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
WEBHOOKS: web.AppKey[Webhooks] = web.AppKey("webhooks")

# Per-request state.
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
PRINCIPAL: web.RequestKey[Principal | None] = web.RequestKey("principal")
