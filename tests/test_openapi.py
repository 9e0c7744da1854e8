"""`GET /api/openapi.json`: a valid OpenAPI 3 document naming every API route with what it takes."""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import validate

from tests.gallery_support import (
    Gallery,
    expect,
)


async def openapi(gallery: Gallery) -> dict[str, Any]:
    spec: dict[str, Any] = await expect(await gallery.request("GET", "/api/openapi.json"), 200)
    return spec


async def test_openapi_document_is_valid_and_lists_every_api_route(gallery: Gallery) -> None:
    spec = await openapi(gallery)
    validate(spec)

    served = {
        (route.method.lower(), route.resource.canonical.replace("{path:.+}", "{path}"))
        for route in gallery.app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and route.resource.canonical.startswith("/api/")
    }
    described = {
        (method, path)
        for path, operations in spec["paths"].items()
        for method in operations
        if path.startswith("/api/")
    }
    assert described == served
    assert ("get", "/api/jobs/{id}/assets/{asset_id}/download") in described
    assert "/metrics" in spec["paths"]


async def test_openapi_describes_bodies_queries_and_auth(gallery: Gallery) -> None:
    spec = await openapi(gallery)
    create_job = spec["paths"]["/api/jobs"]["post"]
    body_ref = create_job["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert schema["required"] == ["inputSource"]
    assert {"201", "400", "401", "429"} <= set(create_job["responses"])
    assert create_job["security"] == [{"bearer": []}]

    listing = spec["paths"]["/api/gallery/videos"]["get"]
    params = {p["name"] for p in listing["parameters"] if p["in"] == "query"}
    assert {"page", "limit", "search", "visibility", "mine"} <= params
    assert {} in listing["security"]  # anonymous callers see public videos

    cleanup = spec["paths"]["/api/jobs/admin/cleanup-old"]["delete"]
    assert {"401", "403"} <= set(cleanup["responses"])
    assert [p["name"] for p in cleanup["parameters"]] == ["days"]
    assert cleanup["summary"]
