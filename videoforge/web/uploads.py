"""Resumable multipart uploads under `/api/uploads`, in the routes `@uppy/aws-s3` calls with
`companionEndpoint: "/api/uploads"`; the parts go straight to storage."""

from __future__ import annotations

from aiohttp import web

from videoforge import keys
from videoforge.auth.tokens import require_user
from videoforge.gallery.multipart import MultipartUploads
from videoforge.storage.multipart import check_part_number
from videoforge.support.digits import parse_digits
from videoforge.web.bodies import load_body, validate
from videoforge.web.openapi import documented
from videoforge.web.schemas import (
    PART_NUMBER_PATTERN,
    CompleteMultipartSchema,
    SignPartsQuerySchema,
    StartMultipartSchema,
    UploadKeyQuerySchema,
    UploadParamsQuerySchema,
)

routes = web.RouteTableDef()
PART_NUMBER_SCHEMA = {"type": "string", "pattern": f"^{PART_NUMBER_PATTERN}$"}
BASE = "/api/uploads/s3/multipart"
COMPLETE_MULTIPART = CompleteMultipartSchema()
SIGN_PARTS_QUERY = SignPartsQuerySchema()
START_MULTIPART = StartMultipartSchema()
UPLOAD_KEY_QUERY = UploadKeyQuerySchema()
UPLOAD_PARAMS_QUERY = UploadParamsQuerySchema()


def _uploads(request: web.Request) -> MultipartUploads:
    return request.app[keys.UPLOADS]


def _key(request: web.Request) -> str:
    key: str = validate(UPLOAD_KEY_QUERY, dict(request.query))["key"]
    return key


@routes.get("/api/uploads/s3/params")
@documented(query=UploadParamsQuerySchema, errors=(413, 429))
async def upload_params(request: web.Request) -> web.Response:
    """A single PUT's URL, as `@uppy/aws-s3` asks for one below its multipart threshold:
    `{method, url, fields: {key}, headers}` (generate-url, in the plugin's words)."""
    viewer = await require_user(request)
    query = validate(UPLOAD_PARAMS_QUERY, dict(request.query))
    content_type = query["content_type"]
    ticket = await request.app[keys.GALLERY].create_upload_url(
        viewer, query["filename"], content_type, query["size"]
    )
    return web.json_response(
        {
            "method": "PUT",
            "url": ticket["uploadUrl"],
            "fields": {"key": ticket["s3Key"]},
            "headers": {"Content-Type": content_type},
            "expires": ticket["expiresIn"],
        }
    )


@routes.post(BASE)
@documented(body=StartMultipartSchema, errors=(413, 429))
async def start_multipart(request: web.Request) -> web.Response:
    """Start a multipart upload to a new key of the caller's: `{key, uploadId}`."""
    viewer = await require_user(request)
    body = await load_body(request, START_MULTIPART)
    started = await _uploads(request).start(
        viewer, body["filename"], body["content_type"], body["size"]
    )
    return web.json_response(started)


@routes.get(BASE + "/{uploadId}")
@documented(query=UploadKeyQuerySchema, errors=(404,))
async def list_parts(request: web.Request) -> web.Response:
    """The parts stored so far, `[{PartNumber, Size, ETag}]`, to resume an upload."""
    viewer = await require_user(request)
    upload_id, key = request.match_info["uploadId"], _key(request)
    return web.json_response(await _uploads(request).parts(viewer, upload_id, key))


# Before `/{partNumber}`, which would match it too.
@routes.get(BASE + "/{uploadId}/batch")
@documented(query=SignPartsQuerySchema, errors=(404,))
async def sign_parts(request: web.Request) -> web.Response:
    """Presigned PUTs for several parts: `{presignedUrls: {"1": url, ...}}`."""
    viewer = await require_user(request)
    query = validate(SIGN_PARTS_QUERY, dict(request.query))
    upload_id = request.match_info["uploadId"]
    signed = await _uploads(request).sign_parts(
        viewer, upload_id, query["key"], query["part_numbers"]
    )
    return web.json_response(signed)


# Digits only, so that `/{uploadId}/complete` is no part's path too.
@routes.get(BASE + "/{uploadId}/{partNumber:[0-9]+}")
@documented(query=UploadKeyQuerySchema, errors=(404,), path={"partNumber": PART_NUMBER_SCHEMA})
async def sign_part(request: web.Request) -> web.Response:
    """A presigned PUT for one part, `{url, expires}`; its answer's ETag names the part."""
    viewer = await require_user(request)
    upload_id, key = request.match_info["uploadId"], _key(request)
    number = check_part_number(parse_digits(request.match_info["partNumber"], max_digits=5) or 0)
    return web.json_response(await _uploads(request).sign_part(viewer, upload_id, key, number))


@routes.post(BASE + "/{uploadId}/complete")
@documented(body=CompleteMultipartSchema, query=UploadKeyQuerySchema, errors=(404, 413))
async def complete_multipart(request: web.Request) -> web.Response:
    """Assemble the listed parts into the object: `{location, key}`; then confirm it."""
    viewer = await require_user(request)
    upload_id, key = request.match_info["uploadId"], _key(request)
    body = await load_body(request, COMPLETE_MULTIPART)
    parts = [(part["number"], part["etag"]) for part in body["parts"]]
    return web.json_response(await _uploads(request).complete(viewer, upload_id, key, parts))


@routes.delete(BASE + "/{uploadId}")
@documented(query=UploadKeyQuerySchema, statuses=(204,), errors=(404,))
async def abort_multipart(request: web.Request) -> web.Response:
    """Abort the upload: its parts are deleted and its part URLs stop working."""
    viewer = await require_user(request)
    upload_id, key = request.match_info["uploadId"], _key(request)
    await _uploads(request).abort(viewer, upload_id, key)
    return web.Response(status=204)
