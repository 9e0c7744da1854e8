"""The storage interface every backend implements; callers never know which one they hold."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from videoforge.errors import BadRequest, Conflict
from videoforge.storage.multipart import (
    PendingUpload,
    UploadedPart,
    check_part_number,
    check_upload_id,
)
from videoforge.storage.validation import validate_key
from videoforge.support.resource import Resource

MAX_PRESIGN_SECONDS = 7 * 24 * 3600
MAX_PUT_BYTES = 5 * 1024**3  # S3's limit for one PUT, of a whole object or of one part


class ObjectChanged(Conflict):
    """The uploaded file changed after it was confirmed"""


@dataclass(frozen=True)
class ObjectVersion:
    """One write of an object, as recorded when it was confirmed: any later write through a
    URL that cannot be revoked gives another ETag (and most likely another size)."""

    size: int
    etag: str | None = None  # None: recorded before ETags were; the size is still checked

    def check(self, size: int, etag: str | None) -> None:
        """Raise `ObjectChanged` unless (size, etag) is this version."""
        if size != self.size or (self.etag is not None and etag != self.etag):
            raise ObjectChanged()


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one object."""

    key: str
    size: int
    content_type: str | None
    last_modified: datetime | None
    etag: str | None = None  # changes with every write (S3's ETag; the local backend's own)

    @property
    def version(self) -> ObjectVersion:
        return ObjectVersion(self.size, self.etag)


class Storage(Resource):
    """Object storage: keys are validated by `validate_key` before any backend work."""

    @abc.abstractmethod
    async def presign_put(
        self, key: str, content_type: str, expires_in: int, size: int | None = None
    ) -> str:
        """A URL a client PUTs the object to, valid only with this exact Content-Type (and,
        given a `size`, only for a body of exactly that many bytes)."""

    @abc.abstractmethod
    async def presign_get(self, key: str, expires_in: int) -> str:
        """A URL a client GETs (or HEADs) the object from, Range requests included."""

    @abc.abstractmethod
    async def head(self, key: str) -> ObjectInfo | None:
        """The object's metadata, or None if there is no such object."""

    async def seal(self, key: str) -> ObjectInfo | None:
        """Make the object final: a backend that can refuses presigned PUTs to it from now on
        (S3 cannot revoke a presigned URL, so readers check the returned `version` instead).
        The object's metadata, or None if there is no such object."""
        return await self.head(key)

    @abc.abstractmethod
    async def put_file(self, key: str, path: Path, content_type: str) -> ObjectInfo:
        """Store a local file (streamed: it may be larger than memory)."""

    @abc.abstractmethod
    async def put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        """Store a small object held in memory."""

    @abc.abstractmethod
    async def read_bytes(self, key: str, max_bytes: int = 16 * 1024 * 1024) -> bytes:
        """A small object's content (a playlist, say); `ObjectNotFound` if missing."""

    @abc.abstractmethod
    async def get_file(self, key: str, dest: Path, version: ObjectVersion | None = None) -> None:
        """Download the object to `dest` (replaced atomically); `ObjectNotFound` if missing,
        `ObjectChanged` (and `dest` untouched) if it is no longer `version`."""

    @abc.abstractmethod
    async def local_path(self, key: str) -> Path | None:
        """The file behind the object where this machine has it (ffmpeg reads it in place),
        else None: the object exists only behind a URL, or not at all."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with `prefix` (a plain string prefix), in key order."""

    async def usage(self, prefix: str = "") -> tuple[int, int]:
        """(object count, total bytes) under `prefix`."""
        count = total = 0
        async for info in self.list(prefix):
            count += 1
            total += info.size
        return count, total

    # --- multipart uploads (the rules: videoforge.storage.multipart) -----------------------

    async def create_multipart(self, key: str, content_type: str) -> str:
        """Start a multipart upload to `key`; its upload id."""
        validate_key(key)
        check_content_type(content_type)
        return await self._create_multipart(key, content_type)

    async def presign_part(
        self, key: str, upload_id: str, part_number: int, expires_in: int
    ) -> str:
        """A URL a client PUTs one part to; the answer's `ETag` header names the part."""
        validate_key(key)
        check_upload_id(upload_id)
        check_part_number(part_number)
        check_presign_args(expires_in)
        return await self._presign_part(key, upload_id, part_number, expires_in)

    async def list_parts(self, key: str, upload_id: str) -> tuple[UploadedPart, ...]:
        """The parts stored so far, by part number; `UploadNotFound` if no such upload."""
        validate_key(key)
        return await self._list_parts(key, check_upload_id(upload_id))

    async def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> ObjectInfo:
        """Assemble the named (part number, ETag) parts into the object, atomically;
        `InvalidParts` (and the upload still completable) if they break a rule."""
        validate_key(key)
        return await self._complete_multipart(key, check_upload_id(upload_id), parts)

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop the upload and its parts; its part URLs stop working."""
        validate_key(key)
        await self._abort_multipart(key, check_upload_id(upload_id))

    @abc.abstractmethod
    def pending_uploads(self) -> AsyncIterator[PendingUpload]:
        """Every multipart upload neither completed nor aborted."""

    @abc.abstractmethod
    async def _create_multipart(self, key: str, content_type: str) -> str: ...

    @abc.abstractmethod
    async def _presign_part(
        self, key: str, upload_id: str, part_number: int, expires_in: int
    ) -> str: ...

    @abc.abstractmethod
    async def _list_parts(self, key: str, upload_id: str) -> tuple[UploadedPart, ...]: ...

    @abc.abstractmethod
    async def _complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> ObjectInfo: ...

    @abc.abstractmethod
    async def _abort_multipart(self, key: str, upload_id: str) -> None: ...

    @abc.abstractmethod
    async def check(self) -> None:
        """Raise `StorageError` with a human message if the store cannot be used."""


def check_presign_args(expires_in: int, content_type: str | None = None) -> None:
    """Reject expiries S3 would refuse and content types that cannot be a header value."""
    if not 1 <= expires_in <= MAX_PRESIGN_SECONDS:
        raise ValueError(f"expires_in must be between 1 and {MAX_PRESIGN_SECONDS} seconds")
    if content_type is not None:
        check_content_type(content_type)


def check_content_type(content_type: str) -> None:
    if not content_type.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in content_type):
        raise BadRequest("Invalid content type")
