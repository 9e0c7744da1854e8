"""HLS through signed URLs, on any storage backend.

The app serves the playlists itself, under a short-lived token naming the job, so relative
playlist URIs keep working; every segment and init file inside them is rewritten to a signed
storage URL (an HMAC-signed local URL or an S3 presigned one).
"""

from __future__ import annotations

import posixpath
import re
import time
from urllib.parse import quote

from videoforge.config import Config
from videoforge.errors import Forbidden, NotFound
from videoforge.storage.base import Storage
from videoforge.storage.layout import OutputLayout
from videoforge.storage.signing import UrlSigner
from videoforge.storage.validation import validate_key
from videoforge.support.digits import parse_digits
from videoforge.support.secretfile import server_secret

_MAP_URI = re.compile(r'URI="([^"]+)"')


class PlaylistSigner:
    """Issues and checks `{jobId}.{expires}.{signature}` tokens for a job's HLS directory."""

    def __init__(self, config: Config) -> None:
        self._signer = UrlSigner(server_secret(config))
        self.base_url = config.server.base_url

    def master_url(self, job_id: int, ttl: int) -> str:
        """The signed URL of the job's master playlist: what a player is given."""
        return self.playlist_url(job_id, OutputLayout(job_id).master_playlist, ttl)

    def playlist_url(self, job_id: int, key: str, ttl: int) -> str:
        """The signed URL of one playlist of the job's HLS directory (`key` must be in it)."""
        path = key.removeprefix(OutputLayout(job_id).hls_prefix)
        if path == key:
            raise NotFound()
        playlist_key(job_id, path)  # what the HLS route would refuse is never signed
        expires = int(time.time()) + ttl
        signature = self._signer.sign("HLS", str(job_id), expires)
        return f"{self.base_url}/api/hls/{job_id}.{expires}.{signature}/{quote(path)}"

    def verify(self, token: str) -> int:
        """The job id the token grants, or Forbidden."""
        job, _, rest = token.partition(".")
        expires, _, signature = rest.partition(".")
        job_id = parse_digits(job)
        if job_id is None:
            raise Forbidden("Invalid or missing URL signature")
        self._signer.verify("HLS", job, expires, signature)
        return job_id


def is_growing(playlist: str) -> bool:
    """Whether a playlist is an EVENT playlist not yet ended: more segments are to come."""
    return "#EXT-X-PLAYLIST-TYPE:EVENT" in playlist and "#EXT-X-ENDLIST" not in playlist


def playlist_key(job_id: int, path: str) -> str:
    """The storage key of a playlist under the job's HLS directory (nothing outside it)."""
    if not path.endswith(".m3u8"):
        raise NotFound()
    key = validate_key(OutputLayout(job_id).hls_prefix + path)
    return key


async def delivery_url(
    storage: Storage, playlists: PlaylistSigner, job_id: int, key: str, ttl: int
) -> str:
    """The URL a client fetches one of a job's outputs from. A playlist goes through the signed
    HLS route: straight from storage, its relative URIs would name unsigned (refused) URLs."""
    if key.startswith(OutputLayout(job_id).hls_prefix) and key.endswith(".m3u8"):
        return playlists.playlist_url(job_id, key, ttl)
    return await storage.presign_get(key, ttl)


async def sign_playlist(storage: Storage, key: str, text: str, ttl: int) -> str:
    """The playlist with each media URI replaced by a signed URL; playlist URIs stay relative."""
    directory = posixpath.dirname(key)
    layout = OutputLayout.of_key(key)
    if layout is None or not key.startswith(layout.hls_prefix):
        raise NotFound()
    prefix = layout.hls_prefix
    lines = []
    for line in text.splitlines():
        if line.startswith("#EXT-X-MAP:"):
            match = _MAP_URI.search(line)
            if match:
                url = await _signed(storage, directory, prefix, match.group(1), ttl)
                line = line[: match.start(1)] + url + line[match.end(1) :]
        elif line and not line.startswith("#") and not line.endswith(".m3u8"):
            line = await _signed(storage, directory, prefix, line.strip(), ttl)
        lines.append(line)
    return "\n".join(lines) + "\n"


async def _signed(storage: Storage, directory: str, prefix: str, uri: str, ttl: int) -> str:
    if "://" in uri:
        return uri
    key = posixpath.normpath(posixpath.join(directory, uri))
    if not key.startswith(prefix):
        raise NotFound()
    return await storage.presign_get(validate_key(key), ttl)
