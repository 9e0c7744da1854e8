"""Running many awaitables at once, but not too many."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def gather_bounded(
    items: Iterable[T], call: Callable[[T], Awaitable[R]], limit: int
) -> list[R]:
    """`call` on every item, at most `limit` at a time; the results in order. The first error
    propagates, as with `asyncio.gather`."""
    slots = asyncio.Semaphore(limit)

    async def bounded(item: T) -> R:
        async with slots:
            return await call(item)

    return await asyncio.gather(*(bounded(item) for item in items))
