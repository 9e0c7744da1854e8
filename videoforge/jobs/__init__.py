"""Transcoding jobs: the API side, the worker pool, and HLS delivery."""

from videoforge.db.jobs import Job

__all__ = ["Job"]
