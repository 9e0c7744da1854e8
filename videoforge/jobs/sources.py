"""Where a chunk's ffmpeg reads the source: in place where this machine has the file, else over a
presigned URL, ranged, so a worker reads its chunk's time range and not the whole upload."""

from __future__ import annotations

from videoforge.errors import ObjectNotFound
from videoforge.storage import ObjectVersion, Storage
from videoforge.transcode.source import RemoteSource, Source


async def chunk_source(
    storage: Storage, key: str, version: ObjectVersion | None, expires_in: int
) -> Source:
    """The source `key` as ffmpeg opens it; `ObjectNotFound` if missing, `ObjectChanged` if it
    is no longer `version` (and over HTTP, every request of the read answers only that version)."""
    # Checked before a local file or a URL is handed out: a replaced object fails here, at once
    # and for good, where the store's 412 later on would read as a failed (retried) encode.
    info = await storage.head(key)
    if info is None:
        raise ObjectNotFound(f"Object not found: {key}")
    if version is not None:
        version.check(info.size, info.etag)
    path = await storage.local_path(key)
    if path is not None:
        return path
    url = await storage.presign_get(key, expires_in)
    # The ETag just checked (that of `version`, where it has one): the read is of what was seen.
    return RemoteSource(url, info.etag)
