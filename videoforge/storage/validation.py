"""Object keys: the one validation every backend applies, and content types derived from a key."""

from __future__ import annotations

import posixpath
import unicodedata

from videoforge.errors import InvalidKey

MAX_KEY_BYTES = 1024

# Our own table rather than `mimetypes`: the system table varies by machine (`.ts` can be
# TypeScript there) and lacks the HLS types players insist on.
CONTENT_TYPES: dict[str, str] = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".m4a": "audio/mp4",
    ".m4s": "video/iso.segment",
    ".ts": "video/mp2t",
    ".mts": "video/mp2t",  # AVCHD camcorders: a transport stream with 192-byte packets
    ".m2ts": "video/mp2t",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".avi": "video/x-msvideo",
    ".mpd": "application/dash+xml",
    ".vtt": "text/vtt",
    ".gif": "image/gif",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".json": "application/json",
    ".txt": "text/plain",
}
FALLBACK_CONTENT_TYPE = "application/octet-stream"


def validate_key(key: str) -> str:
    """Return `key` if it is a safe object key, else raise `InvalidKey` saying why."""
    if not key:
        raise InvalidKey("Invalid storage key: empty")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKey("Invalid storage key: not valid UTF-8") from None
    if size > MAX_KEY_BYTES:
        raise InvalidKey(f"Invalid storage key: longer than {MAX_KEY_BYTES} bytes")
    if key.startswith("/"):
        raise InvalidKey("Invalid storage key: must not start with '/'")
    if "\\" in key:
        raise InvalidKey("Invalid storage key: must not contain '\\'")
    if any(unicodedata.category(ch) == "Cc" for ch in key):
        raise InvalidKey("Invalid storage key: must not contain control characters")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKey("Invalid storage key: empty, '.' or '..' path segment")
    return key


def validate_prefix(prefix: str) -> str:
    """Like `validate_key`, but empty (everything) and one trailing `/` are allowed."""
    if prefix == "":
        return prefix
    validate_key(prefix.removesuffix("/") if prefix != "/" else "")
    return prefix


def content_type_for(key: str) -> str:
    """The media type a key's extension implies (case-insensitive), else octet-stream."""
    extension = posixpath.splitext(key)[1].lower()
    return CONTENT_TYPES.get(extension, FALLBACK_CONTENT_TYPE)
