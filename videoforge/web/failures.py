"""What a failure that escaped a handler means for the client: an outage of a service we need
(503), a value the database refused (400), or a bug (500); and a log that says so without
writing a line per request while a service is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import asyncpg

from videoforge.errors import BadRequest, ServiceUnavailable, VideoforgeError

THROTTLE_INTERVAL_S = 1.0


class ThrottledLog:
    """At most one line per `interval` seconds for each topic; the next line counts the ones
    left out, so a flood of identical failures is still visible in size."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = THROTTLE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, topic: str, message: str) -> None:
        """Log `message` at WARNING unless `topic` was logged less than `interval` ago."""
        now = self._clock()
        last = self._last.get(topic)
        if last is not None and now - last < self._interval:
            self._suppressed[topic] = self._suppressed.get(topic, 0) + 1
            return
        suppressed = self._suppressed.pop(topic, 0)
        suffix = f" ({suppressed} more since the last line)" if suppressed else ""
        self._last[topic] = now
        self._logger.warning("%s%s", message, suffix)


# The server going away: refused, shutting down, restarting, out of connection slots, or a
# session cut off mid-query (08xxx). Any other PostgreSQL error is about the query itself.
_DATABASE_OUTAGES = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
# asyncpg's own words for a connection or pool that is gone (others, such as "another
# operation is in progress", are bugs of ours).
_CLOSED_WORDS = ("closed", "closing", "terminated")
_CHAIN_LIMIT = 8  # causes followed when looking for the outage behind a wrapped error


def classify(exc: BaseException) -> VideoforgeError | None:
    """The answer an unexpected exception deserves, or None when it is a bug of ours (500).

    An outage (the database or another service unreachable) is a 503 that says to retry; a
    value the database refused (class 22, "data exception") is the client's, a 400.
    """
    for cause in _chain(exc):
        if isinstance(cause, ServiceUnavailable):
            return cause
        if _is_database_outage(cause):
            reason = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
            return ServiceUnavailable(reason, component="database")
    # Only the server's refusal: asyncpg raises DataError itself when we pass an argument of the
    # wrong type, a bug of ours (its errors carry no severity).
    if isinstance(exc, asyncpg.DataError) and getattr(exc, "severity", None):
        return BadRequest("Invalid value in request")
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < _CHAIN_LIMIT:
        seen.add(id(current))
        yield current
        # Causes only: an error raised while handling an outage is not the outage.
        current = current.__cause__


def _is_database_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database is unreachable."""
    if isinstance(exc, _DATABASE_OUTAGES):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        return any(word in str(exc) for word in _CLOSED_WORDS)
    # Connecting: refused, reset, or (a unix socket) no such file while the server is down;
    # a TimeoutError is asyncpg's connect or pool acquire timing out.
    return isinstance(exc, OSError) and _raised_in_asyncpg(exc)


def _raised_in_asyncpg(exc: BaseException) -> bool:
    """True if the traceback passes through asyncpg: its own I/O failed, not ours."""
    frames = exc.__traceback__
    while frames is not None:
        if frames.tb_frame.f_globals.get("__name__", "").startswith("asyncpg."):
            return True
        frames = frames.tb_next
    return False
