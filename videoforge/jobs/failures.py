"""Which errors of a running job are worth trying again: one table, consulted in order.

A bad input fails the same way every time, so its job fails at once; a storage, database or
disk error may pass. A transient error is first retried in place by a storage transfer (its
budget and backoff: `jobs.transfers.TransferRetry`); when it still fails the step, the worker
tries the whole job again, up to `queue.max_attempts` attempts in all, waiting as
`RetryPolicy` says. An error no rule names is unexpected: the worker logs its
traceback, records it as it is and retries the job.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from videoforge.errors import ObjectNotFound, ServiceUnavailable, StorageError
from videoforge.storage import ObjectChanged
from videoforge.transcode.probe import InvalidMedia
from videoforge.transcode.runner import TranscodeFailed


@dataclass(frozen=True)
class Rule:
    """What an error (of this type, or a subclass) means for the job that it failed."""

    error: type[Exception]
    retryable: bool
    says: str | None = None  # what the job's errorText gives instead of the error's message


RULES: tuple[Rule, ...] = (
    # The same input fails the same way again.
    Rule(InvalidMedia, retryable=False),
    Rule(TranscodeFailed, retryable=False),  # a failed ffmpeg, and TranscodeTimedOut
    # The original is gone, or is no longer the file that was confirmed.
    Rule(ObjectNotFound, retryable=False, says="404 Not Found"),
    Rule(ObjectChanged, retryable=False),
    # A service or the disk in trouble, which may pass.
    Rule(StorageError, retryable=True),
    Rule(ServiceUnavailable, retryable=True),
    Rule(asyncpg.PostgresError, retryable=True),
    Rule(OSError, retryable=True),
)


def rule_for(exc: BaseException) -> Rule | None:
    """The first rule whose type `exc` is; None for an error no rule names."""
    return next((rule for rule in RULES if isinstance(exc, rule.error)), None)


def is_transient(exc: BaseException) -> bool:
    """Whether trying again may succeed where `exc` failed (never for an unnamed error)."""
    rule = rule_for(exc)
    return rule is not None and rule.retryable


def error_text(step: str, exc: BaseException) -> str:
    """The job's errorText when `exc` fails `step`: `{step}: {why}`."""
    rule = rule_for(exc)
    return f"{step}: {rule.says if rule is not None and rule.says else exc}"


@dataclass(frozen=True)
class RetryPolicy:
    """How often a job is tried, and how long to wait before trying again."""

    max_attempts: int
    backoff_seconds: tuple[int, ...] = (5, 30, 120)

    def may_retry(self, attempts: int) -> bool:
        return attempts < self.max_attempts

    def delay(self, attempts: int) -> int:
        return self.backoff_seconds[min(attempts, len(self.backoff_seconds)) - 1]
