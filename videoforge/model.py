"""The domain's words, defined once: the statuses a job goes through and who may see a video.

Everything else (handlers, workers, SQL, the command-line client) takes them from here. The
module imports nothing, so a client can speak of job statuses without loading the server.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """`PENDING -> DOWNLOADING -> PROCESSING -> UPLOADING -> COMPLETED`, or FAILED, or CANCELLED."""

    PENDING = "PENDING"
    DOWNLOADING = "DOWNLOADING"
    PROCESSING = "PROCESSING"
    UPLOADING = "UPLOADING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


# A worker holds the job (under a lease) in these; a job in FINAL never changes again.
RUNNING = (JobStatus.DOWNLOADING, JobStatus.PROCESSING, JobStatus.UPLOADING)
FINAL = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
STATUSES = tuple(JobStatus)


class ChunkStatus(StrEnum):
    """One chunk task of a chunked job: `PENDING -> RUNNING -> COMPLETED`, or FAILED for good.

    A failed attempt that may be retried goes back to PENDING."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class DeliveryStatus(StrEnum):
    """One webhook delivery: PENDING (due, retrying or in flight) until DELIVERED, or FAILED once
    its retries ran out (or its endpoint answered 410 Gone)."""

    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


class Visibility(StrEnum):
    """Public videos are listed to everyone; unlisted ones are seen by whoever has the link;
    private ones only by their owner (and admins)."""

    PUBLIC = "public"
    UNLISTED = "unlisted"
    PRIVATE = "private"


VISIBILITIES = tuple(Visibility)
