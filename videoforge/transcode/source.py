"""Where ffmpeg reads a source from: a local file, or an object in storage over HTTP(S).

A chunk needs only its time range of the source: a worker that did not download the whole file
reads that range over a presigned URL (ffmpeg seeks with HTTP range requests), and the object
must still be the version that was confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RemoteSource:
    """An object ffmpeg reads over HTTP(S): a presigned GET URL, and the ETag it must still have."""

    url: str
    etag: str | None = None


Source = Path | RemoteSource
