"""Operational routes every role serves: `GET /api/health`."""

from __future__ import annotations

from aiohttp import web

from videoforge import __version__, keys
from videoforge.health import run_checks

routes = web.RouteTableDef()


@routes.get("/api/health")
async def health(request: web.Request) -> web.Response:
    """Liveness and readiness: 200 when every component answers, 503 when one does not."""
    components = await run_checks(request.app[keys.HEALTH_CHECKS])
    healthy = all(result["status"] == "ok" for result in components.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        "role": request.app[keys.ROLE],
        "version": __version__,
        "components": components,
    }
    return web.json_response(body, status=200 if healthy else 503)
