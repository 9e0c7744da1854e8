"""Account pages: sign in (`/login`), register (`/register`), the viewer's own library (`/me`)
and the admin console (`/admin`). Server-rendered; their scripts change things through the API."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from videoforge import keys
from videoforge.admin.jobs import JobsAdmin, jobs_admin
from videoforge.admin.storage import usage_report
from videoforge.errors import ValidationFailed
from videoforge.gallery import ListQuery
from videoforge.jobs import Job
from videoforge.jobs.present import job_json
from videoforge.model import STATUSES, VISIBILITIES
from videoforge.web.bodies import validate
from videoforge.web.pages.render import (
    format_duration,
    page_number,
    pagination,
    render,
    render_error,
    require_page_user,
)
from videoforge.web.schemas import AdminJobsQuerySchema

USAGE_ROWS = 50

routes = web.RouteTableDef()
JOB_FILTERS = AdminJobsQuerySchema()


@routes.get("/login", name="login")
async def login_page(request: web.Request) -> web.Response:
    """Sign in with a password (local accounts) or with a bearer token (either auth mode)."""
    auth = request.app[keys.CONFIG].auth
    context = {
        "next": safe_next(request.query.get("next")),
        "registration_open": auth.mode == "local" and auth.allow_registration,
    }
    return await render(request, "login.html", context)


@routes.get("/register", name="register")
async def register_page(request: web.Request) -> web.Response:
    """A new local account; a page saying why not when accounts come from elsewhere."""
    auth = request.app[keys.CONFIG].auth
    context = {"registration_open": auth.mode == "local" and auth.allow_registration}
    return await render(request, "register.html", context)


@routes.get("/me", name="library")
async def library_page(request: web.Request) -> web.Response:
    """The viewer's own videos, whatever their visibility, with inline edit and delete."""
    viewer = await require_page_user(request)
    page = page_number(request.query.get("page"))
    size = request.app[keys.CONFIG].pages.library_page_size
    query = ListQuery(page=page, limit=size, mine=True)
    listing = await request.app[keys.GALLERY].listing(viewer, query)
    pages = listing["pagination"]["totalPages"]
    context = {
        "videos": listing["videos"],
        "total": listing["pagination"]["total"],
        **pagination("/me", {}, page, pages),
        "visibilities": VISIBILITIES,
    }
    return await render(request, "me.html", context)


@routes.get("/admin", name="admin")
async def admin_page(request: web.Request) -> web.Response:
    """Job statistics, every user's jobs (filtered), and storage use; admins only."""
    viewer = await require_page_user(request)
    if not viewer.is_admin:
        return await render_error(request, 403, "Admin access required")
    filters, filter_error = job_filters(request.query)
    app = request.app
    admin = jobs_admin(app)
    size = app[keys.CONFIG].pages.admin_jobs_page_size
    stats, (jobs, total), usage = await asyncio.gather(
        admin.stats(),
        _filtered_jobs(admin, filters, filter_error, size),
        usage_report(app[keys.DB], 1, USAGE_ROWS),
    )
    pages = math.ceil(total / size)
    context = {
        "stats": stats,
        "jobs": [job_json(job) for job in jobs],
        "statuses": STATUSES,
        "status": filters["status"] or "",
        "user_id": filters["user_id"] or "",
        "filter_error": filter_error,
        "total": total,
        **pagination("/admin", _filter_params(filters), filters["page"], pages),
        "usage": usage,
        "average_time": format_average(stats.avg_processing_seconds),
    }
    return await render(request, "admin.html", context)


async def _filtered_jobs(
    admin: JobsAdmin, filters: Mapping[str, Any], error: str | None, size: int
) -> tuple[list[Job], int]:
    # A filter that cannot be applied lists nothing, rather than everything under its name.
    if error:
        return [], 0
    return await admin.all_jobs(filters["status"], filters["user_id"], filters["page"], size)


def job_filters(query: Mapping[str, str]) -> tuple[dict[str, Any], str | None]:
    """Status, user id and page from the query string, checked as the API checks them; on a
    bad value, the form's values as typed and what is wrong with them."""
    given = {name: query[name].strip() for name in ("status", "userId", "page") if name in query}
    try:
        return validate(JOB_FILTERS, {name: v for name, v in given.items() if v}), None
    except ValidationFailed as exc:
        shown = {"status": given.get("status"), "user_id": given.get("userId"), "page": 1}
        return shown, exc.message


def _filter_params(filters: Mapping[str, Any]) -> dict[str, Any]:
    return {"status": filters["status"], "userId": filters["user_id"]}


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: a path on this site only (`//host` and `/\\host` would
    leave it), else the gallery."""
    if not raw or not raw.startswith("/") or raw[1:2] in ("/", "\\"):
        return "/"
    if any(ord(char) < 0x20 or char == "\x7f" for char in raw):
        return "/"
    return raw


def format_average(seconds: float) -> str:
    """`2.43` -> `2.4 s` (jobs on short clips take seconds), `83.4` -> `1:23`; no time yet
    (no job has finished) is `None yet`."""
    if seconds <= 0:
        return "None yet"
    return f"{seconds:.1f} s" if seconds < 60 else format_duration(seconds)
