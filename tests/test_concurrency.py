"""`gather_bounded`: every item, in order, never more than the limit at once."""

from __future__ import annotations

import asyncio

import pytest

from videoforge.support.concurrency import gather_bounded


async def test_gather_bounded_keeps_order_and_never_exceeds_the_limit() -> None:
    running = peak = 0

    async def square(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * (n % 3))
        running -= 1
        return n * n

    assert await gather_bounded(range(20), square, 4) == [n * n for n in range(20)]
    assert peak == 4


async def test_gather_bounded_raises_the_first_error() -> None:
    async def fail_on_three(n: int) -> int:
        if n == 3:
            raise ValueError("three")
        return n

    with pytest.raises(ValueError, match="three"):
        await gather_bounded(range(6), fail_on_three, 2)
