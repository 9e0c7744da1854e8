"""Reading request bodies: JSON objects validated by marshmallow schemas."""

from __future__ import annotations

import json
import re
from typing import Any

import marshmallow
from aiohttp import web

from videoforge.errors import BadRequest, NotFound, UnsupportedMediaType, ValidationFailed
from videoforge.support.digits import parse_digits

# No body of ours nests deeper than a list in an object; a few levels more is still generous,
# and a bound keeps every later walk over the body (ours, marshmallow's) far from recursion limits.
MAX_JSON_DEPTH = 16
# JSON may escape what no text column can hold: NUL (PostgreSQL refuses it in text) and lone
# surrogates (which cannot be encoded to UTF-8 at all, so asyncpg cannot even send them).
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or a 400 that says what is wrong with it (415 unless it is
    sent as JSON)."""
    data = await read_unchecked_json_object(request)
    check_json_values(data)
    return data


async def read_unchecked_json_object(
    request: web.Request, max_bytes: int | None = None
) -> dict[str, Any]:
    """The body (of at most `max_bytes`, else the app's limit) as a JSON object, its values
    not yet checked (`check_json_values`); 415 unless it is sent as JSON."""
    if max_bytes is not None:
        request = request.clone(client_max_size=max_bytes)
    raw = await request.read()
    if raw:  # an empty body is a missing one (400), whatever it is labelled
        require_json(request)
    return decode_json_object(raw)


def require_json(request: web.Request) -> None:
    """Refuse (415) a body not labelled as JSON.

    A form on another site, or a script's fetch without a CORS preflight, can send text/plain,
    form-encoded or multipart bodies, and the browser adds its cookies; a cross-origin
    `application/json` body needs a preflight, which this API never grants. Refusing the rest
    keeps a JSON route from acting on a cross-site request (registering, or signing a browser
    in as someone else).
    """
    if not is_json_media_type(request.content_type):
        raise UnsupportedMediaType("Send the body as application/json")


def is_json_media_type(media_type: str) -> bool:
    """`application/json`, or a JSON-based type such as `application/merge-patch+json`."""
    kind, _, subtype = media_type.lower().partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def decode_json_object(raw: bytes) -> dict[str, Any]:
    """The JSON object in `raw`, its values not yet checked (`check_json_values`)."""
    if not raw:
        raise BadRequest("Request body is required")
    data = decode_json(raw)
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object")
    return data


def parse_json(raw: bytes) -> Any:
    """Untrusted JSON, refused (400) unless every string in it could be stored as text and it
    nests at most `MAX_JSON_DEPTH` levels."""
    data = decode_json(raw)
    check_json_values(data)
    return data


def decode_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:
        raise BadRequest("Request body is nested too deeply") from None
    except ValueError:
        # Also a number too long to convert (Python refuses more than 4300 digits).
        raise BadRequest("Request body is not valid JSON") from None


def check_json_values(data: Any) -> None:
    """Refuse NUL, lone surrogates and nesting deeper than `MAX_JSON_DEPTH` anywhere in `data`.

    Iterative, so that it never recurses itself whatever it is given.
    """
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            check_text(value, "Request body")
        elif isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise BadRequest("Request body is nested too deeply")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for name, item in items:
                if isinstance(name, str):
                    check_text(name, "Request body")
                pending.append((item, depth + 1))


def check_text(text: str, what: str) -> None:
    """Refuse (400) text no column can store: NUL, or a lone surrogate; `what` names where."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return
    if found.group() == "\x00":
        raise BadRequest(f"{what} must not contain NUL characters")
    raise BadRequest(f"{what} contains a lone surrogate (not valid Unicode text)")


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
    row_id = parse_digits(request.match_info[name])
    if row_id is None or not 0 < row_id <= MAX_ID:
        raise not_found()
    return row_id
