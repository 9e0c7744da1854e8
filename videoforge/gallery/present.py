"""Gallery videos as the API shows them: camelCase keys, ISO-8601 UTC timestamps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from videoforge.db.videos import Video

LIST_FIELDS = (
    "id",
    "userId",
    "title",
    "description",
    "visibility",
    "status",
    "duration",
    "resolution",
    "views",
    "thumbnailUrl",
    "previewUrl",
    "createdAt",
)
# Presigned storage URLs: they expire, so nothing kept for later (a webhook event) carries them.
SIGNED_URL_FIELDS = ("thumbnailUrl", "previewUrl")


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def video_json(
    video: Video, thumbnail_url: str | None, preview_url: str | None = None
) -> dict[str, Any]:
    """The full record: confirm, details and update answer with this (the URLs signed for the
    thumbnail and the animated preview, None when there is none)."""
    return {
        "id": video.id,
        "userId": video.user_id,
        "title": video.title,
        "description": video.description,
        "s3Key": video.s3_key,
        "status": video.status,
        "visibility": video.visibility,
        "views": video.views,
        "fileSize": video.file_size,
        "contentType": video.content_type,
        "duration": video.duration,
        "resolution": video.resolution,
        "width": video.width,
        "height": video.height,
        "videoCodec": video.video_codec,
        "audioCodec": video.audio_codec,
        "thumbnailUrl": thumbnail_url,
        "previewUrl": preview_url,
        "jobId": video.job_id,
        "createdAt": iso(video.created_at),
        "updatedAt": iso(video.updated_at),
    }


def list_item_json(
    video: Video, thumbnail_url: str | None, preview_url: str | None = None
) -> dict[str, Any]:
    """The fields a gallery listing shows for each video."""
    full = video_json(video, thumbnail_url, preview_url)
    return {field: full[field] for field in LIST_FIELDS}
