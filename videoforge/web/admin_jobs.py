"""Admin job routes (use case 5): every user's jobs, statistics, restarting failed jobs and
cleaning up old ones. Registered before `/api/jobs/{id}`, which would take `admin` for an id."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from videoforge import keys
from videoforge.admin.jobs import JobsAdmin
from videoforge.auth import require_admin
from videoforge.jobs.present import job_json
from videoforge.web.bodies import validate
from videoforge.web.jobs import MAX_LIMIT
from videoforge.web.openapi import documented
from videoforge.web.schemas import AdminJobsQuerySchema, CleanupJobsQuerySchema

GB = 1024**3

routes = web.RouteTableDef()
ALL_JOBS_QUERY = AdminJobsQuerySchema()
CLEANUP_QUERY = CleanupJobsQuerySchema()


def _admin(request: web.Request) -> JobsAdmin:
    app = request.app
    return JobsAdmin(app[keys.DB], app[keys.STORAGE], app[keys.JOBS], app[keys.GALLERY])


def _gigabytes(size: int) -> float:
    return round(size / GB, 6)


@routes.get("/api/jobs/admin/all")
@documented(auth="admin", query=AdminJobsQuerySchema)
async def all_jobs(request: web.Request) -> web.Response:
    """Every user's jobs, newest first, filtered by status or user."""
    await require_admin(request)
    query = validate(ALL_JOBS_QUERY, dict(request.query))
    page, limit = query["page"], min(query["limit"], MAX_LIMIT)
    jobs, total = await _admin(request).all_jobs(query["status"], query["user_id"], page, limit)
    pagination = {
        "total": total,
        "page": page,
        "limit": limit,
        "totalPages": math.ceil(total / limit),
    }
    return web.json_response({"jobs": [job_json(j) for j in jobs], "pagination": pagination})


@routes.get("/api/jobs/admin/stats")
@documented(auth="admin")
async def job_stats(request: web.Request) -> web.Response:
    """Job counts by status, mean processing time and storage used."""
    await require_admin(request)
    stats = await _admin(request).stats()
    body: dict[str, Any] = {
        "totalJobs": stats.total,
        "pending": stats.pending,
        "processing": stats.processing,
        "completed": stats.completed,
        "failed": stats.failed,
        "cancelled": stats.cancelled,
        "avgProcessingTime": round(stats.avg_processing_seconds, 1),
        "totalStorageUsed": _gigabytes(stats.storage_bytes),
        "totalStorageBytes": stats.storage_bytes,
    }
    return web.json_response(body)


@routes.post("/api/jobs/admin/restart-failed")
@documented(auth="admin")
async def restart_failed(request: web.Request) -> web.Response:
    """Queue every FAILED job again, attempts reset."""
    admin = await require_admin(request)
    job_ids = await _admin(request).restart_failed(admin)
    return web.json_response(
        {"message": f"{len(job_ids)} failed jobs restarted", "jobIds": job_ids}
    )


@routes.delete("/api/jobs/admin/cleanup-old")
@documented(auth="admin", query=CleanupJobsQuerySchema)
async def cleanup_old(request: web.Request) -> web.Response:
    """Delete jobs that ended more than `days` ago, and their outputs."""
    admin = await require_admin(request)
    query = validate(CLEANUP_QUERY, dict(request.query))
    cleanup = await _admin(request).cleanup_old(admin, query["days"])
    return web.json_response(
        {
            "message": f"{len(cleanup.job_ids)} old jobs deleted",
            "freedSpace": _gigabytes(cleanup.freed_bytes),
            "freedBytes": cleanup.freed_bytes,
        }
    )
