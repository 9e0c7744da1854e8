"""Storage keys for uploads: `gallery/{userId}/{epochMillis}-{safeName}`."""

from __future__ import annotations

import re
import time
import unicodedata

MAX_NAME_LENGTH = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DOTS = re.compile(r"\.{2,}")


def safe_filename(filename: str) -> str:
    """A name that is harmless in a key, a path and a header: ASCII `[A-Za-z0-9._-]`, bounded."""
    base = re.split(r"[/\\]", filename)[-1]
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    name = _DOTS.sub(".", _UNSAFE.sub("-", ascii_name))
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    extension = extension.strip("-")[:10]
    room = MAX_NAME_LENGTH - (len(extension) + 1 if extension else 0)
    stem = stem.strip(".-")[:room].rstrip(".-") or "video"
    return f"{stem}.{extension}" if extension else stem


def owner_prefix(user_id: str) -> str:
    return f"gallery/{user_id}/"


def upload_key(user_id: str, filename: str, now_ms: int | None = None) -> str:
    """Where a user's new upload goes."""
    millis = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{owner_prefix(user_id)}{millis}-{safe_filename(filename)}"
