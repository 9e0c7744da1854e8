"""The one shape of an API error: `{"error": "<message>"}` with its status, and a validation
error's per-field `details` beside it.

A plain helper module (no fixtures): its asserts carry their own messages, since pytest rewrites
asserts only in test modules and registered plugins.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp


async def assert_error(
    response: aiohttp.ClientResponse,
    status: int,
    message: str | None = None,
    details: dict[str, Any] | None = None,
) -> str:
    """Check that `response` is `{"error": message}` with `status` (any non-empty message if
    none is given; `details` too, where given). Returns the message."""
    text = await response.text()
    assert response.status == status, f"expected {status}, got {response.status}: {text}"
    assert response.content_type == "application/json", f"{response.content_type}: {text}"
    body = json.loads(text)
    keys = {"error"} if details is None else {"error", "details"}
    assert isinstance(body, dict) and set(body) == keys, f"expected only {sorted(keys)}: {text}"
    assert isinstance(body["error"], str) and body["error"], f"no error message: {text}"
    assert message is None or body["error"] == message, f"expected {message!r}: {text}"
    assert details is None or body["details"] == details, f"expected details {details}: {text}"
    return str(body["error"])
