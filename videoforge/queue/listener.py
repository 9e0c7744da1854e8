"""LISTEN on one held connection, so a waiting receiver wakes as soon as a message is sent.

Receivers poll every `queue.poll_interval` anyway: a lost notification, or a lost connection,
costs latency, never a message. A dropped connection is replaced on the next wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

CHANNEL = "videoforge_queue"  # the payload is the queue name
ACQUIRE_TIMEOUT = 5.0
RETRY_SECONDS = 5.0  # after a failed (re)connect, poll only until then

_CONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class Wakeups:
    """A NOTIFY listener for one queue name, turned into events that waiting receivers await."""

    def __init__(self, pool: asyncpg.Pool, queue: str) -> None:
        self._pool = pool
        self._queue = queue
        self._conn: PoolConnectionProxy | None = None
        self._event = asyncio.Event()
        self._lock = asyncio.Lock()
        self._retry_at = 0.0

    def current(self) -> asyncio.Event:
        """Take this before looking for work: a send while looking then sets it, so none is lost."""
        return self._event

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
                log.info("queue: pool too small to hold a LISTEN connection; polling only")
                return
            try:
                self._conn = await self._listen()
            except _CONNECT_ERRORS as exc:
                self._retry_at = loop.time() + RETRY_SECONDS
                log.warning("queue: cannot LISTEN (%s); polling until it can", exc)

    async def close(self) -> None:
        """Stop listening and hand the connection back to the pool."""
        async with self._lock:
            await self._drop()

    async def _listen(self) -> PoolConnectionProxy:
        conn = await self._pool.acquire(timeout=ACQUIRE_TIMEOUT)
        try:
            await conn.add_listener(CHANNEL, self._on_notify)
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
                await conn.remove_listener(CHANNEL, self._on_notify)
            await self._pool.release(conn)

    def _on_notify(self, conn: object, pid: int, channel: str, payload: object) -> None:
        if payload == self._queue:
            self._wake()

    def _on_lost(self, conn: object) -> None:
        # The pool has already taken the dead connection back. Waiting receivers re-poll at once,
        # and the next wait listens again.
        self._conn = None
        log.warning("queue: LISTEN connection lost; listening again on the next wait")
        self._wake()

    def _wake(self) -> None:
        self._event.set()
        self._event = asyncio.Event()
