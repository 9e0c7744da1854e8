"""Gallery routes: uploads, browsing, details, streaming and owners' edits (use cases 1, 3, 4)."""

from __future__ import annotations

from aiohttp import web

from videoforge import keys
from videoforge.auth.tokens import get_principal, require_user
from videoforge.gallery import Gallery, ListQuery
from videoforge.gallery.service import VideoNotFound
from videoforge.support.paging import MAX_LIMIT
from videoforge.web.bodies import load_body, path_id, validate
from videoforge.web.openapi import documented
from videoforge.web.schemas import (
    ConfirmUploadSchema,
    GenerateUploadUrlSchema,
    ListVideosQuerySchema,
    StreamQuerySchema,
    UpdateVideoSchema,
)

routes = web.RouteTableDef()
# Built once: building a schema costs more than using it (it showed in the HTTP benchmark).
CONFIRM_UPLOAD = ConfirmUploadSchema()
GENERATE_UPLOAD_URL = GenerateUploadUrlSchema()
LIST_VIDEOS_QUERY = ListVideosQuerySchema()
STREAM_QUERY = StreamQuerySchema()
UPDATE_VIDEO = UpdateVideoSchema()


def _gallery(request: web.Request) -> Gallery:
    return request.app[keys.GALLERY]


def _video_id(request: web.Request) -> int:
    return path_id(request, "id", VideoNotFound)


@routes.post("/api/upload/generate-url")
@documented(body=GenerateUploadUrlSchema, errors=(413, 429))
async def generate_upload_url(request: web.Request) -> web.Response:
    """A signed URL to PUT a new upload to, straight to storage."""
    viewer = await require_user(request)
    body = await load_body(request, GENERATE_UPLOAD_URL)
    result = await _gallery(request).create_upload_url(
        viewer, body["filename"], body["content_type"], body.get("file_size")
    )
    return web.json_response(result)


@routes.post("/api/upload/confirm")
@documented(body=ConfirmUploadSchema, statuses=(201,), errors=(403, 404, 413, 429))
async def confirm_upload(request: web.Request) -> web.Response:
    """Record an uploaded object as the caller's video; with `transcode`, queue its job."""
    viewer = await require_user(request)
    body = await load_body(request, CONFIRM_UPLOAD)
    video = await request.app[keys.JOBS].confirm_upload(
        viewer,
        body["s3_key"],
        body["title"],
        body["description"],
        body["visibility"],
        body.get("transcode"),
    )
    return web.json_response(video, status=201)


@routes.get("/api/gallery/videos")
@documented(auth="optional", query=ListVideosQuerySchema)
async def list_videos(request: web.Request) -> web.Response:
    """Public videos, plus the caller's own hidden ones; search and pages."""
    viewer = await get_principal(request)
    gallery = _gallery(request)
    body = await gallery.cached_page(viewer, request.query_string)
    if body is None:
        params = validate(LIST_VIDEOS_QUERY, dict(request.query))
        query = ListQuery(
            page=params["page"],
            limit=min(params["limit"], MAX_LIMIT),
            search=params["search"] or None,
            visibility=params["visibility"],
            mine=params["mine"],
        )
        body = await gallery.list_page(viewer, query, request.query_string)
    return web.Response(body=body, content_type="application/json")


@routes.get("/api/gallery/videos/{id}")
@documented(auth="optional", errors=(403, 404))
async def video_details(request: web.Request) -> web.Response:
    """One video's record; counts a view."""
    viewer = await get_principal(request)
    return web.json_response(await _gallery(request).details(viewer, _video_id(request)))


@routes.get("/api/gallery/videos/{id}/stream")
@documented(auth="optional", query=StreamQuerySchema, errors=(403, 404))
async def stream_video(request: web.Request) -> web.Response:
    """A signed URL to play the video: the best rendition (or `quality`), and HLS."""
    viewer = await get_principal(request)
    # Most players ask without a query: skip the schema then (it shows in the benchmark).
    quality = validate(STREAM_QUERY, dict(request.query))["quality"] if request.query else None
    stream = await _gallery(request).stream_url(viewer, _video_id(request), quality)
    return web.json_response(stream)


@routes.put("/api/gallery/videos/{id}")
@documented(body=UpdateVideoSchema, errors=(403, 404))
async def update_video(request: web.Request) -> web.Response:
    """Change the title, description or visibility of one's own video."""
    viewer = await require_user(request)
    video_id = _video_id(request)
    changes = await load_body(request, UPDATE_VIDEO)
    return web.json_response(await _gallery(request).update(viewer, video_id, changes))


@routes.delete("/api/gallery/videos/{id}")
@documented(errors=(403, 404))
async def delete_video(request: web.Request) -> web.Response:
    """Delete a video (owner or admin); its files are left to the storage sweep."""
    viewer = await require_user(request)
    await _gallery(request).delete(viewer, _video_id(request))
    return web.json_response({"message": "Video deleted successfully"})
