"""Jobs and assets as the API shows them."""

from __future__ import annotations

from typing import Any

from videoforge.db.assets import Asset
from videoforge.db.jobs import Job
from videoforge.gallery.present import iso


def job_json(job: Job) -> dict[str, Any]:
    shown = {
        "id": job.id,
        "userId": job.user_id,
        "inputSource": job.input_source,
        "outputFormats": job.qualities,
        "status": job.status,
        "progress": job.progress,
        "duration": job.duration,
        "resolution": job.resolution,
        "videoCodec": job.video_codec,
        "audioCodec": job.audio_codec,
        "errorText": job.error_text,
        "attempts": job.attempts,
        "galleryVideoId": job.gallery_video_id,
        "createdAt": iso(job.created_at),
        "updatedAt": iso(job.updated_at),
        "startedAt": iso(job.started_at),
        "completedAt": iso(job.completed_at),
    }
    if job.chunks_total is not None:
        shown["chunks"] = {"total": job.chunks_total, "completed": job.chunks_completed}
    return shown


def asset_json(asset: Asset) -> dict[str, Any]:
    return {
        "id": asset.id,
        "assetType": asset.asset_type,
        "format": asset.format,
        "quality": asset.quality,
        "s3Key": asset.s3_key,
        "fileSize": asset.file_size,
        "width": asset.width,
        "height": asset.height,
        "bitrate": asset.bitrate,
    }
