"""Admin storage routes: sweep away orphaned objects, and see who uses the space."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from videoforge import keys
from videoforge.admin import gigabytes
from videoforge.admin.audit import audit
from videoforge.admin.storage import SweepReport, UsageReport, sweep, upload_grace, usage_report
from videoforge.auth.tokens import require_admin
from videoforge.support.paging import MAX_LIMIT, pagination_json
from videoforge.web.bodies import validate
from videoforge.web.openapi import documented
from videoforge.web.schemas import PageQuerySchema, SweepQuerySchema

routes = web.RouteTableDef()
# Built once: building a schema costs more than using it.
SWEEP_QUERY = SweepQuerySchema()
PAGE_QUERY = PageQuerySchema()


@routes.post("/api/admin/storage/sweep")
@documented(auth="admin", query=SweepQuerySchema)
async def sweep_storage(request: web.Request) -> web.Response:
    """Find the stored objects no row refers to; delete them unless a dry run."""
    admin = await require_admin(request)
    query = validate(SWEEP_QUERY, dict(request.query))
    grace = upload_grace(request.app[keys.CONFIG].storage.presign_ttl)
    report = await sweep(
        request.app[keys.DB], request.app[keys.STORAGE], dry_run=query["dry_run"], grace=grace
    )
    audit(admin, "storage sweep", **_audited(report))
    return web.json_response(_sweep_json(report))


@routes.get("/api/admin/storage/usage")
@documented(auth="admin", query=PageQuerySchema)
async def storage_usage(request: web.Request) -> web.Response:
    """Stored bytes and video counts per user, largest first."""
    await require_admin(request)
    query = validate(PAGE_QUERY, dict(request.query))
    limit = min(query["limit"], MAX_LIMIT)
    report = await usage_report(request.app[keys.DB], query["page"], limit)
    return web.json_response(_usage_json(report, query["page"], limit))


def _audited(report: SweepReport) -> dict[str, Any]:
    details = {"dry_run": report.dry_run, "count": report.count, "bytes": report.bytes}
    if report.upload_count:  # a sweep that found none logs the line it always did
        details |= {"uploads": report.upload_count, "upload_bytes": report.upload_bytes}
    return details


def _sweep_json(report: SweepReport) -> dict[str, Any]:
    """`count`, `bytes` and `freedSpace` are the objects'; the `upload*` keys the uploads'."""
    return {
        "dryRun": report.dry_run,
        "message": _sweep_message(report),
        "count": report.count,
        "bytes": report.bytes,
        "freedSpace": 0 if report.dry_run else gigabytes(report.bytes),
        "objects": [
            {"key": orphan.key, "size": orphan.size, "reason": orphan.reason}
            for orphan in report.orphans
        ],
        "uploadCount": report.upload_count,
        "uploadBytes": report.upload_bytes,
        "uploads": [
            {
                "key": upload.key,
                "uploadId": upload.upload_id,
                "bytes": upload.size,
                "started": upload.started.isoformat(),
            }
            for upload in report.uploads
        ],
    }


def _sweep_message(report: SweepReport) -> str:
    message = f"{report.count} orphaned objects {'found' if report.dry_run else 'deleted'}"
    if report.upload_count:
        verb = "found" if report.dry_run else "aborted"
        message += f"; {report.upload_count} abandoned multipart uploads {verb}"
    return message


def _usage_json(report: UsageReport, page: int, limit: int) -> dict[str, Any]:
    totals = report.totals
    return {
        "users": [
            {
                "userId": usage.user_id,
                "videos": usage.videos,
                "originalBytes": usage.original_bytes,
                "outputBytes": usage.output_bytes,
                "totalBytes": usage.total_bytes,
            }
            for usage in report.users
        ],
        "totals": {
            "users": totals.users,
            "videos": totals.videos,
            "originalBytes": totals.original_bytes,
            "outputBytes": totals.output_bytes,
            "totalBytes": totals.total_bytes,
        },
        "pagination": pagination_json(totals.users, page, limit),
    }
