"""ffmpeg's `-progress` output turned into a fraction done, reported at a bounded rate.

`-progress pipe:1` writes blocks of `key=value` lines, each ending with `progress=continue` (or
`progress=end` for the last); `out_time_us` is how far the output got, against the probed duration.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable

ProgressCallback = Callable[[float], Awaitable[None] | None]
StepCallback = Callable[[float], Awaitable[None]]  # what `ProgressSteps` hands each step

# Short of done until ffmpeg has exited cleanly, whatever out_time says.
RUNNING_CAP = 0.99


class ProgressParser:
    """Feed it lines; each finished block gives the fraction of `duration` done so far."""

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.ended = False
        self._block: dict[str, str] = {}

    def feed(self, line: str) -> float | None:
        """The fraction done when `line` closes a block, else None."""
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        if key != "progress":
            self._block[key] = value.strip()
            return None
        self.ended = value.strip() == "end"
        block, self._block = self._block, {}
        seconds = out_time(block)
        if seconds is None or self.duration <= 0:
            return None
        return min(max(seconds / self.duration, 0.0), 1.0)


def out_time(block: dict[str, str]) -> float | None:
    """Seconds of output written, from `out_time_us` (or `out_time`); None while N/A."""
    micros = block.get("out_time_us") or block.get("out_time_ms")  # both are µs in ffmpeg 6
    if micros and micros.lstrip("-").isdigit():
        return int(micros) / 1_000_000
    clock = block.get("out_time", "")
    sign = -1 if clock.startswith("-") else 1
    parts = clock.lstrip("-").split(":")
    try:
        hours, minutes, seconds = (float(part) for part in parts)
    except ValueError:
        return None
    return sign * (hours * 3600 + minutes * 60 + seconds)


class ProgressThrottle:
    """Passes increasing fractions to `callback`, at most once per `interval` (except the last)."""

    def __init__(
        self,
        callback: ProgressCallback,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._callback = callback
        self._interval = interval
        self._clock = clock
        self._last_value = -1.0
        self._last_time: float | None = None

    async def report(self, fraction: float, *, final: bool = False) -> None:
        """Report `fraction`; only `final=True` may report 1.0."""
        value = 1.0 if final else min(max(fraction, 0.0), RUNNING_CAP)
        now = self._clock()
        too_soon = self._last_time is not None and now - self._last_time < self._interval
        if value <= self._last_value or (too_soon and not final):
            return
        self._last_value, self._last_time = value, now
        result = self._callback(value)
        if inspect.isawaitable(result):
            await result


class ProgressSteps:
    """Splits a 0..1 progress range into consecutive steps, each reporting its own 0..1."""

    def __init__(self, report: StepCallback) -> None:
        self._report = report
        self._done = 0.0

    def next(self, share: float | None = None) -> StepCallback:
        """The callback of the step taking the next `share` of the range (None: what is left)."""
        start = self._done
        width = 1.0 - start if share is None else share
        self._done = start + width

        async def report(fraction: float) -> None:
            await self._report(start + width * fraction)

        return report
