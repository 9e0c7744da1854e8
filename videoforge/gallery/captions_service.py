"""Caption tracks of gallery videos: stored, listed with signed URLs, and served to players.

Who may do what is the gallery's to decide (`Gallery.captions`, `put_caption`,
`delete_caption`); this holds what the tracks are once that is settled. A track is sanitised
WebVTT in the database, served by the app at a signed, expiring URL naming the video (scope
`CAPTIONS`, so no HLS or storyboard token opens one); the language in the URL is the track's tag
in RFC 5646 case.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

from videoforge.cache import Cache
from videoforge.config import Config
from videoforge.db import captions as captions_db
from videoforge.db.captions import CaptionTrack, JobCaptions
from videoforge.db.videos import Video
from videoforge.errors import NotFound
from videoforge.gallery.captions import (
    is_language_tag,
    normalise_language,
    parse_captions,
    to_webvtt,
)
from videoforge.storage.signed_hls import TokenSigner

CAPTION_FILE_SUFFIX = ".vtt"


class CaptionNotFound(NotFound):
    """Caption track not found"""


class CaptionTracks:
    """One per application, inside the gallery."""

    def __init__(self, config: Config, pool: asyncpg.Pool, cache: Cache, cache_ttl: float) -> None:
        self.pool = pool
        self.cache = cache
        self.cache_ttl = cache_ttl
        self.tokens = TokenSigner(config, "CAPTIONS")
        self.base_url = config.server.base_url
        self.url_ttl = config.storage.presign_ttl

    def url(self, video_id: int, language: str) -> str:
        """The signed URL a player fetches the track from."""
        token = self.tokens.issue(video_id, self.url_ttl)
        return f"{self.base_url}/api/captions/{token}/{language}{CAPTION_FILE_SUFFIX}"

    async def listed(self, video_id: int) -> list[dict[str, Any]]:
        """`[{language, label, url}]` of the video's tracks, by language (the list is cached;
        the URLs are signed afresh)."""
        return [self.track_json(video_id, track) for track in await self._tracks(video_id)]

    def track_json(self, video_id: int, track: CaptionTrack) -> dict[str, Any]:
        return {
            "language": track.language,
            "label": track.label,
            "url": self.url(video_id, track.language),
        }

    async def put(
        self, video: Video, language: str, label: str | None, content: bytes
    ) -> tuple[dict[str, Any], bool]:
        """Store the track (SRT or WebVTT, checked against the video's duration) in `language`,
        replacing one there was: its JSON, and whether it is new. `language` is a BCP 47 tag
        (the request's schema checked it), in any case."""
        language = normalise_language(language)
        # Parsing a 1 MiB track takes seconds of CPU: in a thread, the event loop serves on.
        webvtt = await asyncio.to_thread(_as_webvtt, content, video.duration)
        track = CaptionTrack(language, label or language)
        added = await captions_db.put_track(self.pool, video.id, language, track.label, webvtt)
        await self.forget(video.id)
        if added is None:
            raise NotFound("Video not found")
        return self.track_json(video.id, track), added

    async def delete(self, video_id: int, language: str) -> None:
        """Remove the video's track in `language` (any case of its tag)."""
        found = is_language_tag(language) and await captions_db.delete_track(
            self.pool, video_id, normalise_language(language)
        )
        await self.forget(video_id)
        if not found:
            raise CaptionNotFound()

    async def content(self, token: str, name: str) -> bytes:
        """The WebVTT a signed URL names: `name` is `{language}.vtt`."""
        video_id = self.tokens.verify(token)
        language = name.removesuffix(CAPTION_FILE_SUFFIX)
        if language == name or not is_language_tag(language):
            raise CaptionNotFound()
        text = await captions_db.get_content(self.pool, video_id, normalise_language(language))
        if text is None:
            raise CaptionNotFound()
        return text.encode()

    async def of_job(self, job_id: int) -> JobCaptions | None:
        """The tracks of the video a job transcoded, read afresh: a playlist shows a change at
        once, whichever process made it."""
        return await captions_db.captions_of_job(self.pool, job_id)

    async def forget(self, video_id: int) -> None:
        """Drop the cached list after a change."""
        await self.cache.delete(_tracks_key(video_id))

    async def _tracks(self, video_id: int) -> list[CaptionTrack]:
        cached = await self.cache.get(_tracks_key(video_id))
        if cached is not None:
            return [CaptionTrack(*pair) for pair in json.loads(cached)]
        tracks = await captions_db.list_tracks(self.pool, video_id)
        encoded = json.dumps([[t.language, t.label] for t in tracks]).encode()
        await self.cache.set(_tracks_key(video_id), encoded, self.cache_ttl)
        return tracks


def _as_webvtt(content: bytes, duration: float | None) -> str:
    """The track checked against the video's duration, as the sanitised WebVTT stored."""
    return to_webvtt(parse_captions(content, duration))


def _tracks_key(video_id: int) -> str:
    return f"gallery:captions:{video_id}"
