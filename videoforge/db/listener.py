"""LISTEN on one held connection, so a waiter wakes as soon as something is NOTIFYed.

Used by the queue (a receiver wakes when a message is sent) and by job event streams (each
status or progress change). Waiters poll anyway: a lost notification, or a lost connection,
costs latency, never correctness. A dropped connection is replaced on the next wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import asyncpg
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

ACQUIRE_TIMEOUT = 5.0
RETRY_SECONDS = 5.0  # after a failed (re)connect, poll only until then

_CONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class Wakeups:
    """A NOTIFY listener on one channel. A payload `key` or `key:details` wakes the waiters on
    `key` and is handed, in order, to that key's subscribers."""

    def __init__(self, pool: asyncpg.Pool, channel: str) -> None:
        self._pool = pool
        self._channel = channel
        self._conn: PoolConnectionProxy | None = None
        self._events: dict[str, asyncio.Event] = {}
        self._subscribers: dict[str, set[asyncio.Queue[str]]] = {}
        self._lock = asyncio.Lock()
        self._retry_at = 0.0

    def current(self, key: str) -> asyncio.Event:
        """Take this before looking for work: a send while looking then sets it, so none is lost."""
        return self._events.setdefault(key, asyncio.Event())

    @contextlib.contextmanager
    def subscribe(self, key: str) -> Iterator[asyncio.Queue[str]]:
        """Every payload for `key` while the block runs."""
        payloads: asyncio.Queue[str] = asyncio.Queue()
        self._subscribers.setdefault(key, set()).add(payloads)
        try:
            yield payloads
        finally:
            subscribers = self._subscribers.get(key, set())
            subscribers.discard(payloads)
            if not subscribers:
                self._subscribers.pop(key, None)

    @staticmethod
    async def wait(event: asyncio.Event, timeout: float) -> bool:
        """Whether `event` fired within `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return False
        return True

    @property
    def listening(self) -> bool:
        """Whether a live connection is listening right now."""
        if self._conn is None:
            return False
        try:
            return not self._conn.is_closed()
        except asyncpg.InterfaceError:  # the pool took it back (it does when one dies)
            return False

    async def ensure(self) -> None:
        """Listen if not listening (never raises: without it, receivers just poll)."""
        if self.listening:
            return
        async with self._lock:
            loop = asyncio.get_running_loop()
            if self.listening or loop.time() < self._retry_at:
                return
            await self._drop()
            # Holding the only connection would starve every other query.
            if self._pool.get_max_size() < 2:
                self._retry_at = float("inf")
                log.info(
                    "%s: pool too small to hold a LISTEN connection; polling only", self._channel
                )
                return
            try:
                self._conn = await self._listen()
            except _CONNECT_ERRORS as exc:
                self._retry_at = loop.time() + RETRY_SECONDS
                log.warning("%s: cannot LISTEN (%s); polling until it can", self._channel, exc)

    async def close(self) -> None:
        """Stop listening and hand the connection back to the pool."""
        async with self._lock:
            await self._drop()

    async def _listen(self) -> PoolConnectionProxy:
        conn = await self._pool.acquire(timeout=ACQUIRE_TIMEOUT)
        try:
            await conn.add_listener(self._channel, self._on_notify)
        except BaseException:
            await self._pool.release(conn)
            raise
        conn.add_termination_listener(self._on_lost)
        return conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(*_CONNECT_ERRORS):
            conn.remove_termination_listener(self._on_lost)
            if not conn.is_closed():
                await conn.remove_listener(self._channel, self._on_notify)
            await self._pool.release(conn)

    def _on_notify(self, conn: object, pid: int, channel: str, payload: object) -> None:
        key = str(payload).partition(":")[0]
        self._wake(key)
        for subscriber in self._subscribers.get(key, ()):
            subscriber.put_nowait(str(payload))

    def _on_lost(self, conn: object) -> None:
        # The pool has already taken the dead connection back. Waiting receivers re-poll at once,
        # and the next wait listens again.
        self._conn = None
        log.warning("%s: LISTEN connection lost; listening again on the next wait", self._channel)
        for key in list(self._events):
            self._wake(key)

    def _wake(self, key: str) -> None:
        event = self._events.pop(key, None)
        if event is not None:
            event.set()
