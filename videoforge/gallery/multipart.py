"""Resumable uploads: S3 multipart through presigned part URLs, in the shape Uppy's
`@uppy/aws-s3` (and its Companion server) speaks. The bytes go straight to storage; the app
only starts, signs, lists, completes and aborts, for the upload's owner alone."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import asyncpg

from videoforge.auth.tokens import Principal
from videoforge.cache.limits import RateLimiter
from videoforge.config import Config
from videoforge.db import uploads
from videoforge.db.uploads import Upload
from videoforge.errors import Conflict, PayloadTooLarge
from videoforge.gallery.naming import upload_key
from videoforge.storage import ObjectInfo, Storage
from videoforge.storage.multipart import UploadNotFound


class UploadCompleted(Conflict):
    """Upload already completed: confirm its key"""


def check_upload_size(size: int | None, limit: int) -> None:
    """Refuse an upload (declared, or assembled) over `storage.max_upload_bytes`."""
    if size is not None and size > limit:
        raise PayloadTooLarge(f"File too large (max {limit} bytes)")


class MultipartUploads:
    """One per application, beside the gallery: its pool, storage and upload rate limit."""

    def __init__(
        self, config: Config, pool: asyncpg.Pool, storage: Storage, limiter: RateLimiter
    ) -> None:
        self.pool = pool
        self.storage = storage
        self.limiter = limiter
        self.url_ttl = config.storage.presign_ttl
        self.max_upload_bytes = config.storage.max_upload_bytes
        self.upload_urls_per_minute = config.limits.upload_urls_per_minute

    async def start(
        self, viewer: Principal, filename: str, content_type: str, size: int | None
    ) -> dict[str, str]:
        """A new multipart upload to a new key under the viewer's own prefix."""
        await self.limiter.hit(viewer, "upload URLs", self.upload_urls_per_minute)
        check_upload_size(size, self.max_upload_bytes)
        key = upload_key(viewer.user_id, filename)
        upload_id = await self.storage.create_multipart(key, content_type)
        await uploads.record_multipart(self.pool, key, viewer.user_id, upload_id, size)
        return {"key": key, "uploadId": upload_id}

    async def parts(self, viewer: Principal, upload_id: str, key: str) -> list[dict[str, Any]]:
        """The parts stored so far, so a client resumes where it stopped."""
        await self._owned(viewer, upload_id, key)
        stored = await self.storage.list_parts(key, upload_id)
        return [{"PartNumber": p.number, "Size": p.size, "ETag": p.etag} for p in stored]

    async def sign_part(
        self, viewer: Principal, upload_id: str, key: str, number: int
    ) -> dict[str, Any]:
        """A presigned PUT for one part, and when it expires (seconds since the epoch)."""
        await self._owned(viewer, upload_id, key)
        expires = int(time.time()) + self.url_ttl
        url = await self.storage.presign_part(key, upload_id, number, self.url_ttl)
        return {"url": url, "expires": expires}

    async def sign_parts(
        self, viewer: Principal, upload_id: str, key: str, numbers: Sequence[int]
    ) -> dict[str, Any]:
        """Presigned PUTs for several parts at once."""
        await self._owned(viewer, upload_id, key)
        urls = {
            str(n): await self.storage.presign_part(key, upload_id, n, self.url_ttl)
            for n in numbers
        }
        return {"presignedUrls": urls}

    async def complete(
        self, viewer: Principal, upload_id: str, key: str, parts: Sequence[tuple[int, str]]
    ) -> dict[str, str]:
        """Assemble the parts into the object, which confirm then takes as a single PUT's."""
        upload = await self._find(viewer, upload_id, key)
        if not upload.completed:  # a retry of a recorded completion gets the same answer
            info = await self._assemble(upload_id, key, parts)
            if info.size > self.max_upload_bytes:
                await self.storage.delete(key)
                await uploads.forget_multipart(self.pool, upload_id)
                check_upload_size(info.size, self.max_upload_bytes)
            await uploads.mark_completed(self.pool, upload_id)
        location = await self.storage.presign_get(key, self.url_ttl)
        return {"location": location, "key": key}

    async def _assemble(
        self, upload_id: str, key: str, parts: Sequence[tuple[int, str]]
    ) -> ObjectInfo:
        """The assembled object. A completion that ran before without being recorded (its
        answer lost, or the record failed) left the object and no upload: that object."""
        try:
            return await self.storage.complete_multipart(key, upload_id, parts)
        except UploadNotFound:
            info = await self.storage.head(key)
            if info is None:
                raise
            return info

    async def abort(self, viewer: Principal, upload_id: str, key: str) -> None:
        """Drop the upload and its parts."""
        await self._owned(viewer, upload_id, key)
        await self.storage.abort_multipart(key, upload_id)
        await uploads.forget_multipart(self.pool, upload_id)

    async def _owned(self, viewer: Principal, upload_id: str, key: str) -> Upload:
        """The viewer's unfinished upload of `key`."""
        upload = await self._find(viewer, upload_id, key)
        if upload.completed:
            raise UploadCompleted()
        return upload

    async def _find(self, viewer: Principal, upload_id: str, key: str) -> Upload:
        """The viewer's upload of `key`: anyone else's, or another key's, is none."""
        upload = await uploads.get_multipart(self.pool, upload_id)
        if upload is None or upload.user_id != viewer.user_id or upload.s3_key != key:
            raise UploadNotFound()
        return upload
