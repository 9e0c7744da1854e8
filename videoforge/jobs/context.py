"""What every step of a running job shares: its context, and how a step reports failure."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from videoforge.config import Config
from videoforge.errors import VideoforgeError
from videoforge.gallery import Gallery
from videoforge.jobs.failures import error_text, is_transient
from videoforge.jobs.transfers import TRANSFER_RETRY, TransferRetry
from videoforge.storage import Storage
from videoforge.transcode.binaries import Binaries

if TYPE_CHECKING:
    from videoforge.ops.metrics import Metrics
    from videoforge.queue import JobQueue


class JobFailed(Exception):
    """A step failed; `message` is the job's errorText."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


def job_failed(step: str, exc: Exception) -> JobFailed:
    """`exc`, which failed `step`, as the job's failure: retryable as `jobs.failures` says."""
    return JobFailed(error_text(step, exc), retryable=is_transient(exc))


@contextlib.contextmanager
def failing(step: str, *errors: type[Exception]) -> Iterator[None]:
    """Any of `errors` raised inside fails the job as `{step}: ...`; other errors are left to
    the worker, as unexpected."""
    try:
        yield
    except errors as exc:
        raise job_failed(step, exc) from exc


class LeaseLost(Exception):
    """Another worker took the job over: stop touching it."""


@dataclass
class StepContext:
    config: Config
    pool: asyncpg.Pool
    storage: Storage
    gallery: Gallery
    binaries: Binaries
    owner: str
    report_progress: Callable[[int], None]
    metrics: Metrics | None = None
    transfer_retry: TransferRetry = TRANSFER_RETRY
    # Where a chunked job's chunks go for any worker to take; None: this worker runs them all.
    queue: JobQueue | None = None


def describe(exc: BaseException) -> str:
    if isinstance(exc, VideoforgeError):
        return exc.message
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
