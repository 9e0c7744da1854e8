"""The job queue interface every backend implements; callers never know which one they hold.

A message carries only a job id, and for one chunk of a chunked job the chunk's index: the rows
are the truth. Delivery is at least once, so a worker
claims the job in the database (a lease) before doing the work. A message that turns out stale (the
job already done or cancelled) is acked; one whose job another worker still leases is released
until that lease lapses, since its holder may have died.
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass

from videoforge.support.resource import Resource

MAX_BATCH = 10  # SQS's limit per receive; the postgres backend keeps the same contract
MAX_DELAY_SECONDS = 900  # SQS's DelaySeconds limit
MAX_VISIBILITY_SECONDS = 43200  # SQS's 12 hours


@dataclass(frozen=True)
class Message:
    """One delivery of a job id; `receipt` names this delivery, not the message."""

    job_id: int
    receipt: str
    receive_count: int  # deliveries that count towards max_attempts, this one included: 1 at first
    chunk: int | None = None  # the chunk task's index; None: the job itself

    @property
    def body(self) -> str:
        return encode_body(self.job_id, self.chunk)


@dataclass(frozen=True)
class QueueStats:
    """Queue depth, for health pages and autoscaling."""

    visible: int  # waiting to be received
    in_flight: int  # received, not yet acked, invisible
    oldest_age_seconds: float  # how long the longest-waiting message has waited (0 if none)
    dead_lettered: int


class JobQueue(Resource):
    """At-least-once delivery of job ids, with visibility timeouts and a dead-letter queue.

    A message received `queue.max_attempts` times without an ack is dead-lettered instead of
    being delivered again; a delivery handed back with `release` is not one of those times. A
    stale receipt (the message since delivered to someone else) is a no-op on postgres; SQS may
    still honour it (and a stale `release` may leave a duplicate), so workers fence on the job
    row's lease. Failures to reach the backend raise `ServiceUnavailable`.
    """

    @abc.abstractmethod
    async def send(self, job_id: int, delay_seconds: int = 0, *, chunk: int | None = None) -> None:
        """Enqueue a job id (or one of its chunks); send only after the rows are committed (a
        worker may be quick)."""

    @abc.abstractmethod
    async def receive(self, max_messages: int = 1, wait_seconds: float = 0.0) -> list[Message]:
        """Up to `max_messages` (at most 10), waiting up to `wait_seconds` for the first one.

        Each message returned stays invisible to other receivers for `queue.visibility_timeout`.
        """

    @abc.abstractmethod
    async def extend(self, message: Message, seconds: int) -> None:
        """Keep the message invisible for `seconds` from now (a no-op for a stale receipt)."""

    @abc.abstractmethod
    async def ack(self, message: Message) -> None:
        """The job is settled: delete the message."""

    @abc.abstractmethod
    async def release(self, message: Message, delay_seconds: float = 0) -> None:
        """Hand the delivery back: the message is receivable again after `delay_seconds` (at
        most 900, SQS's limit; at once by default), for any worker.

        A hand-back is not a failed delivery: it never counts towards `queue.max_attempts`, however
        often it happens (postgres un-counts it; SQS, whose receive count cannot be lowered, gets
        a fresh message for the job before this one is deleted).
        """

    @abc.abstractmethod
    async def dead_letter(self, message: Message) -> None:
        """Give up on the message now: move it to the dead-letter queue."""

    @abc.abstractmethod
    async def stats(self) -> QueueStats:
        """Counts of waiting, in-flight and dead-lettered messages."""

    @abc.abstractmethod
    async def check(self) -> None:
        """Raise `ServiceUnavailable`, in words, if the queue cannot be used."""


def encode_body(job_id: int, chunk: int | None = None) -> str:
    """The message body: `{"jobId": N}`, or `{"jobId": N, "chunk": I}` for a chunk task."""
    return json.dumps({"jobId": job_id} if chunk is None else {"jobId": job_id, "chunk": chunk})


def decode_body(body: str) -> tuple[int, int | None] | None:
    """The job id and chunk index (None: the job itself) in a body, or None if someone else's
    malformed message."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    job_id, chunk = _count(data.get("jobId"), 1), _count(data.get("chunk"), 0)
    if job_id is None or (chunk is None and data.get("chunk") is not None):
        return None
    return job_id, chunk


def _count(value: object, least: int) -> int | None:
    # bool is an int subclass: `{"jobId": true}` is not a job id.
    if isinstance(value, int) and not isinstance(value, bool) and value >= least:
        return value
    return None


def check_send_args(job_id: int, delay_seconds: int, chunk: int | None = None) -> None:
    """Reject what SQS would reject, on every backend alike."""
    if job_id <= 0:
        raise ValueError("job_id must be positive")
    if chunk is not None and chunk < 0:
        raise ValueError("chunk must not be negative")
    if not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
        raise ValueError(f"delay_seconds must be between 0 and {MAX_DELAY_SECONDS}")


def check_receive_args(max_messages: int, wait_seconds: float) -> None:
    """Reject batch sizes and waits that SQS would refuse or that make no sense."""
    if not 1 <= max_messages <= MAX_BATCH:
        raise ValueError(f"max_messages must be between 1 and {MAX_BATCH}")
    if wait_seconds < 0:
        raise ValueError("wait_seconds must not be negative")


def check_release_delay(seconds: float) -> None:
    """Reject hand-back delays that SQS's DelaySeconds could not hold."""
    if not 0 <= seconds <= MAX_DELAY_SECONDS:
        raise ValueError(f"delay_seconds must be between 0 and {MAX_DELAY_SECONDS}")


def check_visibility(seconds: int) -> None:
    """Reject visibility timeouts outside SQS's range."""
    if not 0 <= seconds <= MAX_VISIBILITY_SECONDS:
        raise ValueError(f"seconds must be between 0 and {MAX_VISIBILITY_SECONDS}")
