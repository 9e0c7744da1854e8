"""Readiness of each component, checked concurrently with a deadline each."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from videoforge import keys
from videoforge.errors import VideoforgeError

HealthCheck = Callable[[], Awaitable[object]]

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 3.0


async def run_check(check: HealthCheck, timeout: float = CHECK_TIMEOUT) -> dict[str, Any]:
    """Run one check: `{"status": "ok", "latencyMs": ...}` or `{"status": "down", "error": ...}`."""
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        return {"status": "down", "error": f"no answer within {timeout:g} s"}
    except VideoforgeError as exc:
        return {"status": "down", "error": exc.message}
    except Exception as exc:
        log.warning("health check failed: %r", exc)
        return {"status": "down", "error": str(exc) or type(exc).__name__}
    return {"status": "ok", "latencyMs": round((time.perf_counter() - started) * 1000, 2)}


async def run_checks(checks: dict[str, HealthCheck]) -> dict[str, dict[str, Any]]:
    """Every check at once, so one slow component does not hide the others."""
    results = await asyncio.gather(*(run_check(check) for check in checks.values()))
    return dict(zip(checks, results, strict=True))


def register_check(app: web.Application, name: str, check: HealthCheck) -> None:
    """Let a resource's cleanup context report on itself."""
    app.setdefault(keys.HEALTH_CHECKS, {})[name] = check
