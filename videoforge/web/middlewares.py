"""Request ids, JSON errors and access logs: the same for every route."""

from __future__ import annotations

import itertools
import logging
import re
import secrets
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from videoforge import keys
from videoforge.errors import ServiceUnavailable, VideoforgeError
from videoforge.web.bodies import check_text
from videoforge.web.failures import ThrottledLog, classify
from videoforge.web.pages.render import render_error

log = logging.getLogger(__name__)
_OUTAGES = ThrottledLog(log)
_REFUSED = ThrottledLog(log)

REQUEST_ID_HEADER = "X-Request-Id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# New ids are 32 hex digits: a random tag of this process, then a counter. Unique like a
# uuid4, without reading the system's random source on every request.
_PROCESS_TAG = secrets.token_hex(8)
_REQUEST_NUMBERS = itertools.count(1)

_NOT_PAGES = ("/api/", "/static/", "/metrics")
# aiohttp's own HTTP errors, worded for people rather than by RFC reason phrase.
_HTTP_MESSAGES = {
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
}


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Carry the caller's request id (if sane) or a new one through logs and the response."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    if _SAFE_REQUEST_ID.match(incoming):
        request_id = incoming
    else:
        request_id = f"{_PROCESS_TAG}{next(_REQUEST_NUMBERS):016x}"
    request[keys.REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[REQUEST_ID_HEADER] = request_id
        raise
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes `{"error": ...}` with its status; tracebacks go to the log only."""
    try:
        _check_url(request)
        return await handler(request)
    except VideoforgeError as exc:
        return _error_answer(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.empty_body:
            raise
        if exc.status == 404 and _wants_page(request):
            return await render_error(request, 404, "Page not found")
        message = _HTTP_MESSAGES.get(exc.status) or exc.reason
        return error_response(exc.status, {"error": message}, exc.headers)
    except Exception as exc:
        known = classify(exc)
        if known is not None:
            return _error_answer(request, known, cause=exc)
        log.exception(
            "request %s crashed: %s %s", request.get(keys.REQUEST_ID), request.method, request.path
        )
        return error_response(500, {"error": "Internal server error"})


def _wants_page(request: web.Request) -> bool:
    """A browser asking for a page that does not exist gets the site's error page, where the
    app serves pages; an API client, a script or an asset request gets the JSON."""
    return (
        request.method in ("GET", "HEAD")
        and keys.PAGE_HEADERS in request.app
        and not request.path.startswith(_NOT_PAGES)
        and "text/html" in request.headers.get("Accept", "")
    )


def _error_answer(
    request: web.Request, exc: VideoforgeError, cause: BaseException | None = None
) -> web.Response:
    """The JSON answer for `exc`, logged as it deserves."""
    if isinstance(exc, ServiceUnavailable):
        # While a service is down every request fails the same way: one line a second says so.
        _OUTAGES.warning(exc.component, f"{exc.component} unavailable: {exc.message}")
    elif cause is not None:
        # A value the database refused: the client's fault, but our validation missed it.
        _REFUSED.warning(type(cause).__name__, f"database refused a value: {cause!r}")
    elif exc.status >= 500:
        log.error("request %s failed: %s", request.get(keys.REQUEST_ID), exc.message)
    response = error_response(exc.status, exc.to_json())
    response.headers.update(exc.headers())
    return response


def _check_url(request: web.Request) -> None:
    """A NUL or lone surrogate in the decoded path or query could reach a text column (and the
    database would refuse it with an error of its own): refuse it here, for every route."""
    check_text(request.path, "The URL path")
    check_text(request.query_string, "The query string")


def error_response(status: int, body: dict[str, Any], headers: Any = None) -> web.Response:
    """A JSON error, keeping headers such as Allow from aiohttp's exception."""
    response = web.json_response(body, status=status)
    for name in ("Allow", "Retry-After", REQUEST_ID_HEADER):
        if headers and name in headers:
            response.headers[name] = headers[name]
    return response


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, path, status, bytes, duration and request id."""

    def log(
        self, request: web.BaseRequest, response: web.StreamResponse, time_taken: float
    ) -> None:
        self.logger.info(
            '%s "%s %s" %s %s %.1fms rid=%s',
            request.remote,
            request.method,
            request.path,
            response.status,
            response.body_length,
            time_taken * 1000,
            request.get(keys.REQUEST_ID, "-"),
        )
