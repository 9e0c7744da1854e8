"""Storage transfers of a running job, retried in place through a short storage outage.

Giving up at the first storage error spends one of the job's few attempts (and, at the upload,
the whole encode) on a blip of seconds. So a transfer is retried where it stands, with backoff,
for about a minute: the lease keeper renews the job's lease meanwhile, and the bound keeps a real
outage from holding a worker slot for long before the attempt is given up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from videoforge.jobs.failures import is_transient

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class TransferRetry:
    """How long a storage transfer is retried in place, and how often; on which errors is
    decided for the whole job (`jobs.failures`)."""

    budget_seconds: float = 60.0
    backoff_seconds: tuple[float, ...] = (1, 2, 4, 8, 15)  # then the last, until the budget

    def delay(self, failures: int) -> float:
        return self.backoff_seconds[min(failures, len(self.backoff_seconds)) - 1]


TRANSFER_RETRY = TransferRetry()


class Deadline:
    """One budget shared by every transfer of a step (an upload's many files)."""

    def __init__(self, policy: TransferRetry) -> None:
        self.policy = policy
        self.ends = time.monotonic() + policy.budget_seconds

    async def run(self, transfer: Callable[[], Awaitable[T]], what: str) -> T:
        """`transfer()`, tried again after each transient error while the budget lasts; the
        last error propagates."""
        failures = 0
        while True:
            try:
                return await transfer()
            except Exception as exc:
                failures += 1
                delay = self.policy.delay(failures)
                if not is_transient(exc) or time.monotonic() + delay > self.ends:
                    raise
                log.warning("%s failed (%s); retry %d in %g s", what, exc, failures, delay)
            await asyncio.sleep(delay)
