"""Caption tracks (add, list, delete) and the signed WebVTT files players fetch them from."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from videoforge import keys
from videoforge.auth.tokens import get_principal, require_user
from videoforge.gallery import Gallery
from videoforge.gallery.captions import MAX_CAPTION_BYTES
from videoforge.gallery.service import VideoNotFound
from videoforge.web.bodies import (
    check_json_values,
    path_id,
    read_unchecked_json_object,
    validate,
)
from videoforge.web.openapi import documented
from videoforge.web.schemas import LANGUAGE_TAG_PATTERN, PutCaptionSchema

routes = web.RouteTableDef()
PUT_CAPTION = PutCaptionSchema()
# A 1 MiB track escaped as JSON: every non-ASCII character as \uXXXX is at most 3 times as long.
MAX_CAPTION_BODY_BYTES = 3 * MAX_CAPTION_BYTES + 64 * 1024
# Replaced tracks must show soon; the URL's signature, not the cache, guards the content.
WEBVTT_HEADERS = {"Cache-Control": "private, max-age=10", "X-Content-Type-Options": "nosniff"}
CAPTION_FILE = {"type": "string", "pattern": LANGUAGE_TAG_PATTERN[:-1] + r"\.vtt$"}


def _gallery(request: web.Request) -> Gallery:
    return request.app[keys.GALLERY]


def _video_id(request: web.Request) -> int:
    return path_id(request, "id", VideoNotFound)


def webvtt_response(body: bytes) -> web.Response:
    """A WebVTT file as players fetch it: a caption track, or a job's storyboard index."""
    return web.Response(body=body, content_type="text/vtt", charset="utf-8", headers=WEBVTT_HEADERS)


async def read_caption_body(request: web.Request) -> tuple[dict[str, Any], bytes]:
    """The checked fields, and `content` as bytes for the caption parser: what in it is not
    text (NUL, a lone surrogate) is left for the parser to name, with its line."""
    data = await read_unchecked_json_object(request, MAX_CAPTION_BODY_BYTES)
    content = data.get("content")
    if isinstance(content, str):
        data["content"] = ""
    check_json_values(data)
    fields = validate(PUT_CAPTION, data)
    assert isinstance(content, str)  # the schema requires one
    return fields, content.encode("utf-8", "surrogatepass")


@routes.get("/api/gallery/videos/{id}/captions")
@documented(auth="optional", errors=(403, 404))
async def list_captions(request: web.Request) -> web.Response:
    """A video's caption tracks, each with a signed URL of its WebVTT."""
    viewer = await get_principal(request)
    return web.json_response(await _gallery(request).video_captions(viewer, _video_id(request)))


@routes.post("/api/gallery/videos/{id}/captions")
@documented(body=PutCaptionSchema, statuses=(200, 201), errors=(403, 404, 413))
async def put_caption(request: web.Request) -> web.Response:
    """Add a caption track to one's own video, or replace the one in its language.

    SRT or WebVTT: cue timings must parse, be in order and end by the video's end; cue text
    keeps WebVTT's own tags only. 201 when the language is new, 200 when replaced.
    """
    viewer = await require_user(request)
    video_id = _video_id(request)
    fields, content = await read_caption_body(request)
    track, added = await _gallery(request).put_caption(
        viewer, video_id, fields["language"], fields["label"], content
    )
    return web.json_response(track, status=201 if added else 200)


@routes.delete("/api/gallery/videos/{id}/captions/{language}")
@documented(errors=(403, 404))
async def delete_caption(request: web.Request) -> web.Response:
    """Remove a caption track (owner or admin); the language in any case."""
    viewer = await require_user(request)
    video_id = _video_id(request)
    await _gallery(request).delete_caption(viewer, video_id, request.match_info["language"])
    return web.json_response({"message": "Caption track deleted"})


@routes.get("/api/captions/{token}/{file}")
@documented(auth="none", content_type="text/vtt", errors=(403, 404), path={"file": CAPTION_FILE})
async def caption_file(request: web.Request) -> web.Response:
    """A caption track's WebVTT (`{language}.vtt`); the token in the path grants the video."""
    captions = _gallery(request).captions
    body = await captions.content(request.match_info["token"], request.match_info["file"])
    return webvtt_response(body)
