"""`GET /api/openapi.json`: an OpenAPI 3 description of every API route, built from the routes
themselves (paths, methods, docstrings) and the marshmallow schemas their handlers load.

A handler says what it takes with `@documented(...)`; a route without it is still listed, so the
description can never silently miss one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import marshmallow
from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from videoforge import __version__, keys
from videoforge.config import Config

Auth = Literal["none", "optional", "user", "admin"]
H = TypeVar("H", bound=Callable[..., Any])

OPENAPI_VERSION = "3.0.3"
DOCUMENTED_PREFIXES = ("/api/", "/metrics", "/media/")
_ERROR_STATUSES: dict[Auth, tuple[int, ...]] = {
    "none": (),
    "optional": (401,),
    "user": (401,),
    "admin": (401, 403),
}
_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    206: "Partial content (a Range request)",
    302: "Redirect to a signed URL",
    400: "Invalid request",
    401: "Missing, malformed, expired or forged token",
    403: "Access denied",
    404: "Not found",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported media type",
    416: "Range not satisfiable (malformed, or past the end)",
    429: "Over a per-user limit (see Retry-After)",
    503: "A component is unavailable",
}

routes = web.RouteTableDef()
_SPEC: web.AppKey[dict[str, Any]] = web.AppKey("openapi_spec")


@dataclass(frozen=True)
class Doc:
    """What a handler takes and answers, for the OpenAPI description."""

    auth: Auth = "user"
    body: type[marshmallow.Schema] | None = None
    query: type[marshmallow.Schema] | None = None
    statuses: tuple[int, ...] = (200,)
    errors: tuple[int, ...] = ()
    content_type: str = "application/json"
    tags: tuple[str, ...] = field(default=())
    # Schemas of path parameters that are more than any string (the default).
    path: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def documented(**doc: Any) -> Callable[[H], H]:
    """Attach a `Doc` to a handler (see `Doc` for the keywords)."""

    def mark(handler: H) -> H:
        handler.__openapi__ = Doc(**doc)  # type: ignore[attr-defined]
        return handler

    return mark


def setup_openapi(app: web.Application) -> None:
    """Serve the description, built once at start-up, when every route is registered."""

    async def build(app: web.Application) -> None:
        app[_SPEC] = describe(app)

    app.on_startup.append(build)
    app.add_routes(routes)


@routes.get("/api/openapi.json")
@documented(auth="none", tags=("system",))
async def openapi_json(request: web.Request) -> web.Response:
    """This description of the API (OpenAPI 3)."""
    return web.json_response(request.app[_SPEC])


def describe(app: web.Application) -> dict[str, Any]:
    """The OpenAPI document of `app`'s API routes."""
    spec = APISpec(
        title="videoforge",
        version=__version__,
        openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin()],
        info={"description": "Self-hosted video platform: uploads, gallery, transcoding jobs."},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", _ERROR_SCHEMA)
    for path, operations in _operations(app).items():
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    _fill_config_limits(document, app[keys.CONFIG])
    return document


# A schema field whose bound is a setting says which (`metadata={"x_maximum_from": ...}`); the
# document states the configured value, as the handler enforces it (or the field's own
# `maximum`, where that is lower).
_MAXIMUM_FROM = "x-maximum-from"


def _fill_config_limits(node: Any, config: Config) -> None:
    if isinstance(node, dict):
        setting = node.pop(_MAXIMUM_FROM, None)
        if setting is not None:
            configured = _setting(config, setting)
            node["maximum"] = min(node.get("maximum", configured), configured)
        for value in node.values():
            _fill_config_limits(value, config)
    elif isinstance(node, list):
        for value in node:
            _fill_config_limits(value, config)


def _setting(config: Config, dotted: str) -> Any:
    """`storage.max_upload_bytes` -> `config.storage.max_upload_bytes`."""
    value: Any = config
    for name in dotted.split("."):
        value = getattr(value, name)
    return value


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "details": {"type": "object", "description": "per-field validation messages"},
    },
}


def _operations(app: web.Application) -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method in ("HEAD", "*"):
            continue
        path = _openapi_path(resource.canonical)
        if not path.startswith(DOCUMENTED_PREFIXES):
            continue
        doc: Doc = getattr(route.handler, "__openapi__", Doc())
        paths.setdefault(path, {})[route.method.lower()] = _operation(route.handler, path, doc)
    return dict(sorted(paths.items()))


def _openapi_path(canonical: str) -> str:
    """aiohttp's `{path:.+}` is OpenAPI's `{path}`."""
    return "/".join(
        part.split(":")[0] + "}" if ":" in part else part for part in canonical.split("/")
    )


def _operation(handler: Any, path: str, doc: Doc) -> dict[str, Any]:
    summary, _, description = (handler.__doc__ or "").strip().partition("\n")
    operation: dict[str, Any] = {
        "operationId": handler.__name__,
        "summary": summary.strip(),
        "tags": list(doc.tags) or [path.split("/")[2] if path.startswith("/api/") else "system"],
        "parameters": _path_parameters(path, doc.path),
        "responses": _responses(doc),
    }
    if description.strip():
        operation["description"] = " ".join(description.split())
    if doc.query is not None:
        operation["parameters"].append({"in": "query", "schema": doc.query})
    if doc.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": doc.body}},
        }
    if doc.auth in ("user", "admin"):
        operation["security"] = [{"bearer": []}]
    elif doc.auth == "optional":
        operation["security"] = [{"bearer": []}, {}]
    return operation


def _path_parameters(path: str, schemas: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [
        {
            "in": "path",
            "name": name,
            "required": True,
            "schema": dict(schemas.get(name, {"type": "string"})),
        }
        for name in names
    ]


def _responses(doc: Doc) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in doc.statuses:
        responses[str(status)] = {"description": _STATUS_TEXT.get(status, "OK")}
        if status != 302:
            responses[str(status)]["content"] = {doc.content_type: {"schema": {}}}
    # Every documented body is JSON: sent as anything else it is refused (bodies.require_json).
    invalid = (400, 415) if doc.body else (400,) if doc.query else ()
    for status in sorted({*invalid, *_ERROR_STATUSES[doc.auth], *doc.errors}):
        responses[str(status)] = {
            "description": _STATUS_TEXT[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return responses
