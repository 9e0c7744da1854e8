"""`/media/{key}`: the routes behind the local storage backend's signed URLs, GET/HEAD (Range
included) and PUT. S3 serves its presigned URLs itself."""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import hdrs, web

from videoforge import keys
from videoforge.config import Config
from videoforge.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, RangeNotSatisfiable
from videoforge.storage.local import (
    MEDIA_PATH,
    PART_SIGNATURE,
    LocalStorage,
    SizeMismatch,
    part_scope,
)
from videoforge.storage.multipart import check_upload_id
from videoforge.storage.validation import validate_key
from videoforge.support.digits import parse_digits
from videoforge.web.openapi import documented
from videoforge.web.schemas import STORAGE_KEY_SCHEMA

ROUTE = MEDIA_PATH + "{key:.+}"
CHUNK_BYTES = 1024 * 1024


def add_media_routes(app: web.Application, config: Config) -> None:
    """Serve `/media/{key}` (GET and HEAD to read, PUT to upload) for the local backend."""
    if config.storage.backend != "local":
        return
    app.router.add_get(ROUTE, get_object, name="storage.media")
    app.router.add_put(ROUTE, put_object_or_part)


@documented(
    auth="none",
    statuses=(200, 206),
    errors=(400, 403, 404, 416),
    content_type="video/mp4",
    path={"key": STORAGE_KEY_SCHEMA},
)
async def get_object(request: web.Request) -> web.StreamResponse:
    """Send the object behind a signed GET URL; HEAD uses the same signature."""
    storage = _storage(request)
    key = validate_key(request.match_info["key"])
    storage.signer.verify("GET", key, *_signature(request))
    path, info = await storage.open_file(key)
    _check_range(request, info.size)
    headers = {hdrs.CONTENT_TYPE: info.content_type or "application/octet-stream"}
    return MediaFileResponse(path, headers=headers)


def _check_range(request: web.Request, size: int) -> None:
    """Refuse, as JSON like every other error, a Range the file response would refuse with
    an empty body: malformed, or starting past the end."""
    if hdrs.IF_RANGE in request.headers:
        return  # the file response decides whether the range applies at all
    try:
        wanted = request.http_range
    except ValueError:
        raise RangeNotSatisfiable(size) from None
    if wanted.start is not None and wanted.start >= size:
        raise RangeNotSatisfiable(size)


@documented(
    auth="none", statuses=(200,), errors=(400, 403, 404, 409, 413), path={"key": STORAGE_KEY_SCHEMA}
)
async def put_object_or_part(request: web.Request) -> web.Response:
    """Store the body of a PUT to a signed URL: one part of a multipart upload when the URL
    names one (`uploadId`, `partNumber`), else the whole object."""
    if "uploadId" in request.query:
        return await put_part(request)
    return await put_object(request)


async def put_part(request: web.Request) -> web.Response:
    """Stage one part of a multipart upload; its ETag (the part's MD5, quoted) names it."""
    storage = _storage(request)
    key = validate_key(request.match_info["key"])
    upload_id = request.query.get("uploadId", "")
    number = parse_digits(request.query.get("partNumber", ""), max_digits=5)
    if number is None:
        raise Forbidden("Invalid or missing URL signature")
    scope = part_scope(upload_id, number)
    storage.signer.verify(PART_SIGNATURE, key, *_signature(request), content_type=scope)
    check_upload_id(upload_id)
    part = await storage.receive_part(
        key, upload_id, number, request.content.iter_chunked(CHUNK_BYTES)
    )
    return web.Response(status=200, headers={hdrs.ETAG: part.etag})


async def put_object(request: web.Request) -> web.Response:
    """Store the body of a PUT to a signed URL, with the signed Content-Type (and size) only;
    refused once the upload is confirmed."""
    storage = _storage(request)
    key = validate_key(request.match_info["key"])
    signed_type = request.query.get("content_type", "")
    size = _signed_size(request)
    storage.signer.verify("PUT", key, *_signature(request), content_type=signed_type, size=size)
    if request.headers.get(hdrs.CONTENT_TYPE, "").strip() != signed_type:
        raise Forbidden("Content-Type does not match the signed URL")
    length = request.content_length
    if size is not None and length is not None and length != size:
        raise SizeMismatch()
    if length is not None and length > storage.max_put_bytes:
        raise PayloadTooLarge(f"Upload larger than {storage.max_put_bytes} bytes")
    if length == 0:
        raise BadRequest("Empty upload")
    # The declared length is only a first filter: `receive` counts what actually arrives.
    info = await storage.receive(key, request.content.iter_chunked(CHUNK_BYTES), size)
    # An ETag, as S3 answers: Uppy's S3 plugin never settles a PUT answered without one.
    headers = {"X-Object-Size": str(info.size), hdrs.ETAG: f'"{info.etag}"'}
    return web.Response(status=200, headers=headers)


class MediaFileResponse(web.FileResponse):
    """A FileResponse that never swaps in a `.gz`/`.br` sibling: those are objects of their own."""

    def _get_file_path_stat_encoding(
        self, accept_encoding: str
    ) -> tuple[Path | None, os.stat_result, str | None]:
        # Overridden rather than cloning the request without Accept-Encoding: a clone
        # re-encodes every header, and a client's non-UTF-8 header bytes made that crash.
        return super()._get_file_path_stat_encoding("")


def _storage(request: web.Request) -> LocalStorage:
    storage = request.config_dict[keys.STORAGE]
    if not isinstance(storage, LocalStorage):
        raise NotFound()
    return storage


def _signature(request: web.Request) -> tuple[str, str]:
    return request.query.get("expires", ""), request.query.get("signature", "")


def _signed_size(request: web.Request) -> int | None:
    """The body length an upload URL was signed for, if it was signed for one."""
    raw = request.query.get("size")
    if raw is None:
        return None
    size = parse_digits(raw)
    if size is None:
        raise Forbidden("Invalid or missing URL signature")
    return size
