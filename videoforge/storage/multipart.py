"""Multipart uploads, the same on every backend: parts PUT to presigned URLs in any order and
in parallel, listed to resume, then assembled in part order into one object (S3's rules)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from videoforge.errors import BadRequest, NotFound

MiB = 1024 * 1024
MIN_PART_BYTES = 5 * MiB  # every part but the last, as S3 requires
MAX_PARTS = 10_000
# S3 upload ids are opaque, URL-safe text; this admits AWS's, SeaweedFS's and our own.
_UPLOAD_ID = re.compile(r"[A-Za-z0-9._~=-]{1,1024}")


class UploadNotFound(NotFound):
    """Upload not found"""


class InvalidParts(BadRequest):
    """Invalid part list"""


@dataclass(frozen=True)
class UploadedPart:
    """One part stored so far: its number, size and ETag (quoted, as S3 gives it)."""

    number: int
    size: int
    etag: str


@dataclass(frozen=True)
class PendingUpload:
    """A multipart upload neither completed nor aborted: its parts are stored but invisible."""

    key: str
    upload_id: str
    started: datetime | None
    size: int  # bytes in its parts so far


def check_upload_id(upload_id: str) -> str:
    """The upload id, if it could be one: anything else names no upload."""
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise UploadNotFound()
    return upload_id


def check_part_number(number: int) -> int:
    if not 1 <= number <= MAX_PARTS:
        raise BadRequest(f"Part number must be between 1 and {MAX_PARTS}")
    return number


def unquoted(etag: str) -> str:
    """An ETag without its quotes: clients send them either way."""
    return etag.strip().strip('"')


def parts_to_assemble(
    requested: Iterable[tuple[int, str]], stored: Iterable[UploadedPart]
) -> list[UploadedPart]:
    """The stored parts a completion names, checked as S3 checks them: in ascending order,
    each with its current ETag, every part but the last at least `MIN_PART_BYTES`."""
    by_number: Mapping[int, UploadedPart] = {part.number: part for part in stored}
    chosen: list[UploadedPart] = []
    for number, etag in requested:
        if chosen and number <= chosen[-1].number:
            raise InvalidParts("Parts must be listed in ascending order of PartNumber")
        part = by_number.get(number)
        if part is None or unquoted(part.etag) != unquoted(etag):
            raise InvalidParts(f"Part {number} was not uploaded with that ETag")
        chosen.append(part)
    if not chosen:
        raise InvalidParts("At least one part is required")
    small = next((part for part in chosen[:-1] if part.size < MIN_PART_BYTES), None)
    if small is not None:
        raise InvalidParts(
            f"Part {small.number} is {small.size} bytes: every part but the last must be "
            f"at least {MIN_PART_BYTES}"
        )
    return chosen
