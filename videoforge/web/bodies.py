"""Reading request bodies: JSON objects validated by marshmallow schemas."""

from __future__ import annotations

import json
from typing import Any

import marshmallow
from aiohttp import web

from videoforge.errors import BadRequest, NotFound, ValidationFailed


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or a 400 that says what is wrong with it."""
    raw = await request.read()
    if not raw:
        raise BadRequest("Request body is required")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("Request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object")
    return data


async def load_body(request: web.Request, schema: marshmallow.Schema) -> dict[str, Any]:
    """Read and validate the body against `schema` (unknown fields are refused)."""
    return validate(schema, await read_json_object(request))


def validate(schema: marshmallow.Schema, data: Any) -> dict[str, Any]:
    """Load `data` with `schema`; a 400 with per-field `details` when it does not fit."""
    try:
        result: dict[str, Any] = schema.load(data)
    except marshmallow.ValidationError as exc:
        raise ValidationFailed(_first_message(exc.messages), details=exc.messages) from None
    return result


def _first_message(messages: Any) -> str:
    """A one-line summary of the first problem.

    marshmallow's own messages are about a field and end with a period ("Unknown field."), so
    they get the field's name in front; ours are whole sentences without one ("Filename is
    required") and stand as they are.
    """
    if isinstance(messages, dict):
        for field, value in messages.items():
            inner = _first_message(value)
            if field == "_schema" or not inner.endswith("."):
                return inner
            return f"{field}: {inner}"
    if isinstance(messages, list) and messages:
        return _first_message(messages[0])
    return str(messages) if messages else "Invalid request body"


MAX_ID = 2**63 - 1


def path_id(request: web.Request, name: str, not_found: type[NotFound]) -> int:
    """A row id from the path; anything but a positive 64-bit integer names no row."""
    raw = request.match_info[name]
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        raise not_found()
    return int(raw)
