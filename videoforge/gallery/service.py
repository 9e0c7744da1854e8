"""The gallery: uploads, listings, details, streaming and owners' edits, with their caching."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import asyncpg
from aiohttp import web

from videoforge import keys
from videoforge.auth.tokens import Principal
from videoforge.cache import Cache
from videoforge.cache.limits import RateLimiter
from videoforge.config import Config
from videoforge.db import assets as assets_db
from videoforge.db import uploads, videos
from videoforge.db.captions import JobCaptions
from videoforge.db.videos import Slice, Video
from videoforge.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    StorageError,
    Unauthorized,
    VideoforgeError,
)
from videoforge.gallery.captions_service import CaptionTracks
from videoforge.gallery.multipart import MultipartUploads, check_upload_size
from videoforge.gallery.naming import owner_prefix, upload_key
from videoforge.gallery.present import list_item_json, video_json
from videoforge.model import VISIBILITIES
from videoforge.storage import ObjectVersion, Storage, validate_key
from videoforge.storage.base import MAX_PUT_BYTES
from videoforge.storage.layout import OutputLayout
from videoforge.storage.signed_hls import (
    PlaylistSigner,
    TokenSigner,
    is_growing,
    playlist_key,
    sign_playlist,
    sign_storyboard,
    subtitles_language,
    subtitles_playlist,
    with_subtitles,
)
from videoforge.support.paging import pagination_json, row_offset
from videoforge.transcode.ladder import QUALITY_NAMES

GENERATION_KEY = "gallery:generation"
SEARCH_TOTAL_TTL = 300.0
MAX_PLAYLIST_BYTES = 4 * 1024 * 1024
MAX_STORYBOARD_BYTES = 1024 * 1024  # 200 cues of ~60 bytes: far more than ours ever hold
# `sign_playlist` or `sign_storyboard`: (storage, key, text, ttl) -> the text, references signed.
ReferenceSigner = Callable[[Storage, str, str, int], Awaitable[str]]


@dataclass(frozen=True)
class ListQuery:
    page: int = 1
    limit: int = 10
    search: str | None = None
    visibility: str | None = None
    mine: bool = False

    def api_query(self) -> str:
        """The query string that asks the API for this listing, names in alphabetical order
        (a listing is cached under the query string it was asked with)."""
        params = {
            "limit": self.limit,
            "mine": "true" if self.mine else None,
            "page": self.page,
            "search": self.search,
            "visibility": self.visibility,
        }
        return urlencode({name: value for name, value in params.items() if value is not None})


class VideoNotFound(NotFound):
    """Video not found"""


@dataclass(frozen=True)
class Outputs:
    """What a ready video's job made that players are given."""

    renditions: dict[str, str]  # quality -> MP4 key
    storyboard: str | None = None  # the WebVTT index's key


def visible_slices(viewer: Principal | None, query: ListQuery) -> list[Slice]:
    """What a listing may show: public videos, plus the viewer's own; never others' hidden ones."""
    wanted = (query.visibility,) if query.visibility else VISIBILITIES
    if viewer is None:
        if query.mine:
            raise Unauthorized("Authentication required")
        return [Slice(None, ("public",))] if "public" in wanted else []
    if query.mine:
        return [Slice(viewer.user_id, wanted)]
    slices = [Slice(None, ("public",))] if "public" in wanted else []
    hidden = tuple(vis for vis in wanted if vis != "public")
    if hidden:
        slices.append(Slice(viewer.user_id, hidden))
    return slices


def can_view(viewer: Principal | None, record: Mapping[str, Any]) -> bool:
    if record["visibility"] != "private":
        return True
    return viewer is not None and (viewer.user_id == record["userId"] or viewer.is_admin)


class Gallery:
    """One per application: holds the pool, storage and cache the gallery works with."""

    def __init__(self, config: Config, pool: asyncpg.Pool, storage: Storage, cache: Cache) -> None:
        self.pool = pool
        self.storage = storage
        self.cache = cache
        self.playlists = PlaylistSigner(config)
        self.storyboards = TokenSigner(config, "STORYBOARD")
        self.base_url = config.server.base_url
        self.url_ttl = config.storage.presign_ttl
        self.max_upload_bytes = config.storage.max_upload_bytes
        self.upload_urls_per_minute = config.limits.upload_urls_per_minute
        self.limiter = RateLimiter(cache)
        # Cached pages hold signed thumbnail URLs: they must outlive the cache entry.
        self.cache_ttl = min(config.cache.ttl, config.storage.presign_ttl / 2)
        self.captions = CaptionTracks(config, pool, cache, self.cache_ttl)

    # --- uploads ---------------------------------------------------------------------------

    async def create_upload_url(
        self, viewer: Principal, filename: str, content_type: str, file_size: int | None
    ) -> dict[str, Any]:
        """A signed PUT URL for a new key under the viewer's own prefix."""
        await self.limiter.hit(viewer, "upload URLs", self.upload_urls_per_minute)
        check_upload_size(file_size, self.max_upload_bytes)
        if file_size is not None and file_size > MAX_PUT_BYTES:
            raise PayloadTooLarge(
                f"File too large for one PUT (max {MAX_PUT_BYTES} bytes): use a multipart upload"
            )
        key = upload_key(viewer.user_id, filename)
        try:
            # Signed for the declared size: the store refuses a body of any other length.
            url = await self.storage.presign_put(key, content_type, self.url_ttl, file_size)
        except StorageError as exc:
            raise VideoforgeError("Failed to generate upload URL") from exc
        # Recorded before the client can upload: the storage sweep spares a recorded upload.
        await uploads.record_upload(self.pool, key, viewer.user_id, file_size)
        return {"uploadUrl": url, "s3Key": key, "expiresIn": self.url_ttl}

    async def confirm_upload(
        self, viewer: Principal, s3_key: str, title: str, description: str, visibility: str
    ) -> dict[str, Any]:
        """Record an uploaded object as the viewer's video (status `uploaded`), sealed: its
        upload URL can no longer change it (or, on S3, every later read refuses a change)."""
        validate_key(s3_key)
        if not s3_key.startswith(owner_prefix(viewer.user_id)):
            raise Forbidden()
        upload = await uploads.get_upload(self.pool, s3_key)
        if upload is not None and upload.unfinished:
            raise Conflict("Upload not completed: complete its multipart upload first")
        info = await self.storage.seal(s3_key)
        if info is None:
            raise NotFound("Uploaded file not found")
        declared = upload.declared_size if upload else None
        await self._check_upload_size(s3_key, info.size, declared)
        video = await videos.insert_video(
            self.pool,
            user_id=viewer.user_id,
            title=title,
            description=description,
            s3_key=s3_key,
            visibility=visibility,
            content_type=info.content_type,
            file_size=info.size,
            etag=info.etag,
        )
        # Only once the video row refers to the key: the object is never left unreferenced.
        await uploads.forget_upload(self.pool, s3_key)
        await self.invalidate(video.id)
        return video_json(video, None)

    async def _check_upload_size(self, s3_key: str, size: int, declared: int | None) -> None:
        """Refuse (and delete: it can never be confirmed) an object over the limit or of another
        size than declared; a store that does not enforce a signed length lets one through."""
        if size > self.max_upload_bytes:
            await self.storage.delete(s3_key)
            check_upload_size(size, self.max_upload_bytes)
        if declared is not None and size != declared:
            await self.storage.delete(s3_key)
            raise Conflict(f"Uploaded file is {size} bytes, not the {declared} declared")

    async def confirmed_version(self, s3_key: str) -> ObjectVersion | None:
        """The version of an original recorded when it was confirmed (None: not a confirmed
        original), which every later read of it must find."""
        video = await videos.get_video_by_key(self.pool, s3_key)
        return original_version(video) if video else None

    # --- reading ---------------------------------------------------------------------------

    async def cached_page(self, viewer: Principal | None, raw_query: str) -> bytes | None:
        """A listing cached for this viewer and this exact query string: a hit skips parsing."""
        return await self.cache.get(await self._list_cache_key(viewer, raw_query))

    async def listing(self, viewer: Principal | None, query: ListQuery) -> dict[str, Any]:
        """A listing for the pages, sharing cache entries with the API request asking for it."""
        raw_query = query.api_query()
        body = await self.cached_page(viewer, raw_query) or await self.list_page(
            viewer, query, raw_query
        )
        listing: dict[str, Any] = json.loads(body)
        return listing

    async def list_page(self, viewer: Principal | None, query: ListQuery, raw_query: str) -> bytes:
        """The listing as JSON bytes, cached under the query string it was asked with."""
        slices = visible_slices(viewer, query)
        offset = row_offset(query.page, query.limit)
        total, page = await asyncio.gather(
            self._total(slices, query.search),
            videos.list_videos(self.pool, slices, query.search, query.limit, offset),
        )
        body = {
            "videos": [list_item_json(v, *await self._image_urls(v)) for v in page],
            "pagination": pagination_json(total, query.page, query.limit),
        }
        encoded = json.dumps(body).encode()
        await self.cache.set(await self._list_cache_key(viewer, raw_query), encoded, self.cache_ttl)
        return encoded

    async def _total(self, slices: list[Slice], search: str | None) -> int:
        """Exact totals: kept by a trigger without a search; with one, counted once per search
        and data generation (any write starts a new one), since counting every match is the
        expensive part of a search over many videos."""
        if not search:
            return await videos.count_videos(self.pool, slices, None)
        params = json.dumps([[piece.owner, piece.visibilities] for piece in slices] + [search])
        key = f"gallery:total:{await self._generation()}:{_digest(params)}"
        cached = await self.cache.get(key)
        if cached is not None:
            return int(cached)
        total = await videos.count_videos(self.pool, slices, search)
        await self.cache.set(key, str(total).encode(), SEARCH_TOTAL_TTL)
        return total

    async def details(self, viewer: Principal | None, video_id: int) -> dict[str, Any]:
        """The full record, counting one view (only for viewers who may see it)."""
        record = await self._viewable_record(viewer, video_id)
        views = await videos.count_view(self.pool, video_id)
        if views is None:
            await self.invalidate(video_id)
            raise VideoNotFound()
        return {**record, "views": views}

    async def stream_url(
        self, viewer: Principal | None, video_id: int, quality: str | None = None
    ) -> dict[str, Any]:
        """A signed URL of the best rendition (or `quality`) and of the HLS ladder once the
        video is transcoded, of the original upload before that; the caption tracks' signed
        URLs always (for the MP4 fallback's `<track>`s), and the storyboard's when there is one."""
        record = await self._viewable_record(viewer, video_id)
        outputs = await self._outputs(record)
        renditions = outputs.renditions
        if quality is not None and quality not in renditions:
            raise NotFound("Rendition not found")
        captions = await self.captions.listed(video_id)
        if not renditions:
            url = await self.storage.presign_get(record["s3Key"], self.url_ttl)
            answer: dict[str, Any] = {"streamUrl": url, "expiresIn": self.url_ttl}
            if await self.playable_while_processing(record):
                answer["hlsUrl"] = self.playlists.master_url(record["jobId"], self.url_ttl)
            answer["playable"] = "hlsUrl" in answer
            return {**answer, "captions": captions}
        chosen = quality or next(q for q in QUALITY_NAMES if q in renditions)
        answer = {
            "streamUrl": await self.storage.presign_get(renditions[chosen], self.url_ttl),
            "expiresIn": self.url_ttl,
            "quality": chosen,
            "qualities": [q for q in QUALITY_NAMES if q in renditions],
            "hlsUrl": self.playlists.master_url(record["jobId"], self.url_ttl),
            "playable": True,
            "captions": captions,
        }
        if outputs.storyboard is not None:
            answer["storyboardUrl"] = self.storyboard_url(record["jobId"])
        return answer

    async def playable_while_processing(self, record: Mapping[str, Any]) -> bool:
        """Whether a video still being transcoded in chunks has its HLS playlists published
        (of the chunks ready so far): the watch page plays them as they grow."""
        if record["status"] != "processing" or record["jobId"] is None:
            return False
        return await self.storage.head(OutputLayout(record["jobId"]).master_playlist) is not None

    async def hls_playlist(self, token: str, path: str) -> bytes:
        """A transcoded video's HLS playlist, its media URIs signed; the token grants the job.
        The master offers the video's caption tracks as they are now, each through a
        subtitles playlist made here (`subs/{language}.m3u8`)."""
        job_id = self.playlists.verify(token)
        language = subtitles_language(path)
        if language is not None:
            return await self._subtitles_playlist(job_id, language)
        key = playlist_key(job_id, path)
        body = await self._signed_file(key, MAX_PLAYLIST_BYTES, sign_playlist)
        if key != OutputLayout(job_id).master_playlist:
            return body
        captions = _playable_captions(await self.captions.of_job(job_id))
        if captions is None:
            return body
        tracks = [(t.language, t.label) for t in captions.tracks]
        return with_subtitles(body.decode("utf-8", "replace"), tracks).encode()

    async def _subtitles_playlist(self, job_id: int, language: str) -> bytes:
        captions = _playable_captions(await self.captions.of_job(job_id))
        if captions is None or language not in {t.language for t in captions.tracks}:
            raise NotFound()
        assert captions.duration is not None
        url = self.captions.url(captions.video_id, language)
        return subtitles_playlist(captions.duration, url).encode()

    async def _signed_file(self, key: str, max_bytes: int, sign: ReferenceSigner) -> bytes:
        """The text file stored at `key` (a playlist, the storyboard's index) with the
        references in it signed by `sign`; cached, except a playlist still growing (its job
        runs), which is read afresh: players reload it for the segments added since."""
        cache_key = f"signed:{key}"
        body = await self.cache.get(cache_key)
        if body is None:
            raw = await self.storage.read_bytes(key, max_bytes=max_bytes)
            text = await sign(self.storage, key, raw.decode("utf-8", "replace"), self.url_ttl)
            body = text.encode()
            if not is_growing(text):
                await self.cache.set(cache_key, body, self.cache_ttl)
        return body

    async def delivery_url(self, job_id: int, key: str) -> str:
        """The URL a client fetches one of a job's outputs from. A playlist and the storyboard's
        index go through their signed routes: straight from storage, the relative URIs in them
        would name unsigned (refused) URLs."""
        layout = OutputLayout(job_id)
        if key.startswith(layout.hls_prefix) and key.endswith(".m3u8"):
            return self.playlists.playlist_url(job_id, key, self.url_ttl)
        if key == layout.storyboard:
            return self.storyboard_url(job_id)
        return await self.storage.presign_get(key, self.url_ttl)

    def storyboard_url(self, job_id: int) -> str:
        """The signed URL of a job's storyboard index, as the storyboard route serves it."""
        token = self.storyboards.issue(job_id, self.url_ttl)
        return f"{self.base_url}/api/storyboards/{token}/storyboard.vtt"

    async def storyboard(self, token: str) -> bytes:
        """A job's storyboard index, each sprite reference a signed URL; the token grants it."""
        key = OutputLayout(self.storyboards.verify(token)).storyboard
        return await self._signed_file(key, MAX_STORYBOARD_BYTES, sign_storyboard)

    async def _outputs(self, record: Mapping[str, Any]) -> Outputs:
        """A ready video's renditions and storyboard (cached with the record)."""
        if record["status"] != "ready" or record["jobId"] is None:
            return Outputs({})
        key = _outputs_key(record["id"])
        cached = await self.cache.get(key)
        if cached is not None:
            return Outputs(**json.loads(cached))
        assets = await assets_db.list_assets(self.pool, record["jobId"])
        outputs = Outputs(
            renditions={
                a.quality: a.s3_key for a in assets if a.asset_type == "video" and a.quality
            },
            storyboard=next((a.s3_key for a in assets if a.asset_type == "storyboard"), None),
        )
        await self.cache.set(key, json.dumps(dataclasses.asdict(outputs)).encode(), self.cache_ttl)
        return outputs

    # --- owners' edits ---------------------------------------------------------------------

    async def update(
        self, viewer: Principal, video_id: int, changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Change title, description or visibility of one's own video."""
        await self._own_video(viewer, video_id)
        updated = await videos.update_video(self.pool, video_id, changes)
        await self.invalidate(video_id)
        if updated is None:
            raise VideoNotFound()
        return video_json(updated, *await self._image_urls(updated))

    async def delete(self, viewer: Principal, video_id: int) -> None:
        """Remove the record (owner or admin); the stored files stay for the storage sweep."""
        await self._own_video(viewer, video_id, admin_too=True)
        deleted = await videos.delete_video(self.pool, video_id)
        await self.invalidate(video_id)
        if not deleted:
            raise VideoNotFound()

    # --- captions --------------------------------------------------------------------------

    async def video_captions(self, viewer: Principal | None, video_id: int) -> dict[str, Any]:
        """The video's caption tracks with signed URLs, for those who may see the video."""
        await self._viewable_record(viewer, video_id)
        return {"captions": await self.captions.listed(video_id)}

    async def put_caption(
        self, viewer: Principal, video_id: int, language: str, label: str | None, content: bytes
    ) -> tuple[dict[str, Any], bool]:
        """Add or replace the owner's track in `language`: the track, and whether it is new."""
        video = await self._own_video(viewer, video_id)
        return await self.captions.put(video, language, label, content)

    async def delete_caption(self, viewer: Principal, video_id: int, language: str) -> None:
        """Remove a track (the owner, or an admin)."""
        await self._own_video(viewer, video_id, admin_too=True)
        await self.captions.delete(video_id, language)

    async def invalidate(self, video_id: int) -> None:
        """Forget the cached record and every cached listing after a write."""
        await self.cache.delete(_record_key(video_id), _outputs_key(video_id))
        await self.captions.forget(video_id)
        await self.cache.incr(GENERATION_KEY)

    # --- helpers ---------------------------------------------------------------------------

    async def _video(self, video_id: int) -> Video:
        video = await videos.get_video(self.pool, video_id)
        if video is None:
            raise VideoNotFound()
        return video

    async def _own_video(
        self, viewer: Principal, video_id: int, *, admin_too: bool = False
    ) -> Video:
        """The video, if it is the viewer's (or the viewer is an admin, where `admin_too`)."""
        video = await self._video(video_id)
        if video.user_id != viewer.user_id and not (admin_too and viewer.is_admin):
            raise Forbidden()
        return video

    async def _viewable_record(self, viewer: Principal | None, video_id: int) -> dict[str, Any]:
        cached = await self.cache.get(_record_key(video_id))
        if cached is not None:
            record: dict[str, Any] = json.loads(cached)
        else:
            video = await self._video(video_id)
            record = video_json(video, *await self._image_urls(video))
            await self.cache.set(_record_key(video_id), json.dumps(record).encode(), self.cache_ttl)
        if not can_view(viewer, record):
            raise Forbidden()
        return record

    async def _image_urls(self, video: Video) -> tuple[str | None, str | None]:
        """Signed URLs of the video's thumbnail and animated preview (None: it has none)."""
        return await self._signed(video.thumbnail_key), await self._signed(video.preview_key)

    async def _signed(self, key: str | None) -> str | None:
        return await self.storage.presign_get(key, self.url_ttl) if key else None

    async def _list_cache_key(self, viewer: Principal | None, raw_query: str) -> str:
        params = json.dumps([viewer.user_id if viewer else None, raw_query])
        return f"gallery:list:{await self._generation()}:{_digest(params)}"

    async def _generation(self) -> str:
        """Bumped by every write: cached listings and totals of older generations go unused."""
        return (await self.cache.get(GENERATION_KEY) or b"0").decode()


def original_version(video: Video) -> ObjectVersion | None:
    """The version of a video's original recorded when it was confirmed."""
    return None if video.file_size is None else ObjectVersion(video.file_size, video.etag)


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _record_key(video_id: int) -> str:
    return f"gallery:video:{video_id}"


def _outputs_key(video_id: int) -> str:
    return f"gallery:outputs:{video_id}"


def _playable_captions(captions: JobCaptions | None) -> JobCaptions | None:
    """The job's captions, if there are any a player can be offered: a subtitles playlist
    needs the video's duration."""
    if captions is None or not captions.tracks or captions.duration is None:
        return None
    return captions


async def gallery_ctx(app: web.Application) -> AsyncIterator[None]:
    """Build the gallery from the resources the app already holds."""
    gallery = Gallery(app[keys.CONFIG], app[keys.DB], app[keys.STORAGE], app[keys.CACHE])
    app[keys.GALLERY] = gallery
    app[keys.UPLOADS] = MultipartUploads(
        app[keys.CONFIG], app[keys.DB], gallery.storage, gallery.limiter
    )
    yield
