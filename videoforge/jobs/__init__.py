"""Transcoding jobs: the API side, following a job, and the worker pool."""

from videoforge.db.jobs import Job

__all__ = ["Job"]
