"""Rendering pages: the Jinja environment, the layout's context, security headers, filters.

Every page carries a Content-Security-Policy that allows scripts and styles from this origin
only, and media from this origin or the storage's; templates autoescape everything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web

from videoforge import keys
from videoforge.auth.sessions import SESSION_COOKIE
from videoforge.auth.tokens import Principal, get_principal
from videoforge.config import Config
from videoforge.errors import Unauthorized

WEB_DIR = Path(__file__).parent.parent
STATIC_DIR = WEB_DIR / "static"


def setup_rendering(app: web.Application, config: Config) -> None:
    """Templates (autoescaped), static files and the headers every page carries."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        duration=format_duration, age=format_age, count=format_count, bytes=format_bytes
    )
    app.router.add_static("/static/", STATIC_DIR, name="static")
    app[keys.PAGE_HEADERS] = security_headers(config)


def security_headers(config: Config) -> dict[str, str]:
    """Headers every page carries; media may come from this origin and the storage's."""
    media = " ".join(sorted({"'self'", *_origins(config)}))
    policy = "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {media} data: blob:",
            f"media-src {media} blob:",
            f"connect-src {media}",
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
    }


def _origins(config: Config) -> set[str]:
    """Origins of the URLs the app hands out: its own public URL and the storage endpoint."""
    urls = [config.server.base_url]
    if config.storage.backend == "s3":
        storage = config.storage
        urls.append(storage.public_endpoint_url or storage.endpoint_url)
        if not (storage.public_endpoint_url or storage.endpoint_url):
            urls.append(f"https://{storage.bucket}.s3.{storage.region}.amazonaws.com")
    origins = set()
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme and parts.netloc:
            origins.add(f"{parts.scheme}://{parts.netloc}")
    return origins


async def page_viewer(request: web.Request) -> Principal | None:
    """The signed-in viewer; an expired or forged session cookie just means signed out."""
    try:
        return await get_principal(request)
    except Unauthorized:
        request[keys.PRINCIPAL] = None
        return None


async def require_page_user(request: web.Request) -> Principal:
    """The signed-in viewer; anyone else is sent to sign in and brought back afterwards."""
    viewer = await page_viewer(request)
    if viewer is None:
        raise web.HTTPFound("/login?next=" + quote(request.path_qs, safe="/"))
    return viewer


async def render_error(request: web.Request, status: int, message: str) -> web.Response:
    """An error page saying what the API would say (`message` is its `error`)."""
    return await render(request, "error.html", {"status": status, "message": message}, status)


async def render(
    request: web.Request, template: str, context: Mapping[str, Any], status: int = 200
) -> web.Response:
    """A page with the layout's context (viewer, CSRF token, auth mode) and security headers."""
    viewer = await page_viewer(request)
    session = request.cookies.get(SESSION_COOKIE) if viewer else None
    auth = request.app[keys.CONFIG].auth
    base = {
        "viewer": viewer,
        "csrf_token": request.app[keys.SESSIONS].csrf_token(session) if session else "",
        "auth_mode": auth.mode,
        "can_register": auth.mode == "local" and auth.allow_registration,
        "path": request.path,
    }
    response = aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)
    response.headers.update(request.app[keys.PAGE_HEADERS])
    if request.cookies.get(SESSION_COOKIE) and viewer is None:
        request.app[keys.SESSIONS].clear_cookie(response)
    return response


def page_number(raw: str | None) -> int:
    """A page number from the query string; anything odd means the first page."""
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        return 1
    return max(1, int(raw))


def pagination(path: str, params: Mapping[str, Any], page: int, total_pages: int) -> dict[str, Any]:
    """What the `pagination` macro shows: this page, the last, and links to its neighbours that
    keep the other (non-empty) query parameters."""

    def url(number: int) -> str:
        kept = {name: value for name, value in params.items() if value}
        return f"{path}?{urlencode({**kept, 'page': number})}"

    return {
        "page": page,
        "total_pages": total_pages,
        "prev_url": url(page - 1) if page > 1 else None,
        "next_url": url(page + 1) if page < total_pages else None,
    }


# --- template filters --------------------------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    """`83.4` -> `1:23`, `3725` -> `1:02:05`; empty when unknown."""
    if seconds is None:
        return ""
    total = math.floor(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_age(iso_timestamp: str | None, now: datetime | None = None) -> str:
    """`2026-11-20T10:00:00Z` -> `4 days ago`."""
    if not iso_timestamp:
        return ""
    moment = datetime.fromisoformat(iso_timestamp.replace("Z", "+00:00"))
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    for unit, size in (("year", 31536000), ("month", 2592000), ("day", 86400),
                       ("hour", 3600), ("minute", 60)):  # fmt: skip
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def format_count(n: int | None) -> str:
    """`1234` -> `1,234`."""
    return f"{n or 0:,}"


BYTE_UNITS = (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3))


def format_bytes(size: int) -> str:
    """`512` -> `512 bytes`, `40_000_000` -> `40.0 MB`: decimal units, as upload.js counts."""
    for unit, scale in BYTE_UNITS:
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"
