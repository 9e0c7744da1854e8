"""Operational routes every role serves: `GET /api/health` and `GET /metrics`."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from videoforge import __version__, keys
from videoforge.ops.health import run_checks
from videoforge.web.openapi import documented

routes = web.RouteTableDef()


@routes.get("/api/health")
@documented(auth="none", statuses=(200, 503))
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


@routes.get("/metrics")
@documented(auth="none", content_type="text/plain")
async def serve_metrics(request: web.Request) -> web.Response:
    """Prometheus text format; a source that cannot be read leaves its gauges stale, not a 500."""
    metrics = request.app[keys.METRICS]
    await metrics.refresh(request.app)
    body = generate_latest(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
