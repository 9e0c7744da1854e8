"""Admin job routes (use case 5): every user's jobs, statistics, restarting failed jobs and
cleaning up old ones. Registered before `/api/jobs/{id}`, which would take `admin` for an id."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from videoforge.admin import gigabytes
from videoforge.admin.jobs import jobs_admin
from videoforge.auth.tokens import require_admin
from videoforge.jobs.present import job_json
from videoforge.support.paging import MAX_LIMIT, pagination_json
from videoforge.web.bodies import validate
from videoforge.web.openapi import documented
from videoforge.web.schemas import AdminJobsQuerySchema, CleanupJobsQuerySchema

routes = web.RouteTableDef()
ALL_JOBS_QUERY = AdminJobsQuerySchema()
CLEANUP_QUERY = CleanupJobsQuerySchema()


@routes.get("/api/jobs/admin/all")
@documented(auth="admin", query=AdminJobsQuerySchema)
async def all_jobs(request: web.Request) -> web.Response:
    """Every user's jobs, newest first, filtered by status or user."""
    await require_admin(request)
    query = validate(ALL_JOBS_QUERY, dict(request.query))
    page, limit = query["page"], min(query["limit"], MAX_LIMIT)
    jobs, total = await jobs_admin(request.app).all_jobs(
        query["status"], query["user_id"], page, limit
    )
    pagination = pagination_json(total, page, limit)
    return web.json_response({"jobs": [job_json(j) for j in jobs], "pagination": pagination})


@routes.get("/api/jobs/admin/stats")
@documented(auth="admin")
async def job_stats(request: web.Request) -> web.Response:
    """Job counts by status, mean processing time and storage used."""
    await require_admin(request)
    stats = await jobs_admin(request.app).stats()
    body: dict[str, Any] = {
        "totalJobs": stats.total,
        "pending": stats.pending,
        "processing": stats.processing,
        "completed": stats.completed,
        "failed": stats.failed,
        "cancelled": stats.cancelled,
        "avgProcessingTime": round(stats.avg_processing_seconds, 1),
        "totalStorageUsed": gigabytes(stats.storage_bytes),
        "totalStorageBytes": stats.storage_bytes,
    }
    return web.json_response(body)


@routes.post("/api/jobs/admin/restart-failed")
@documented(auth="admin")
async def restart_failed(request: web.Request) -> web.Response:
    """Queue every FAILED job again, attempts reset."""
    admin = await require_admin(request)
    job_ids = await jobs_admin(request.app).restart_failed(admin)
    return web.json_response(
        {"message": f"{len(job_ids)} failed jobs restarted", "jobIds": job_ids}
    )


@routes.delete("/api/jobs/admin/cleanup-old")
@documented(auth="admin", query=CleanupJobsQuerySchema)
async def cleanup_old(request: web.Request) -> web.Response:
    """Delete jobs that ended more than `days` ago, and their outputs."""
    admin = await require_admin(request)
    query = validate(CLEANUP_QUERY, dict(request.query))
    cleanup = await jobs_admin(request.app).cleanup_old(admin, query["days"])
    return web.json_response(
        {
            "message": f"{len(cleanup.job_ids)} old jobs deleted",
            "freedSpace": gigabytes(cleanup.freed_bytes),
            "freedBytes": cleanup.freed_bytes,
        }
    )
