"""Per-user rate limits: fixed one-minute windows counted in the cache.

With Redis the count is shared by every API process; with the in-process cache each process
counts on its own. A fixed window lets a user burst up to twice the limit across a window
boundary, which is fine for keeping one account from flooding the queue or the bucket.
"""

from __future__ import annotations

import time

from videoforge.auth.tokens import Principal
from videoforge.cache import Cache
from videoforge.errors import TooManyRequests

WINDOW_SECONDS = 60


class RateLimiter:
    """Counts actions per user and kind; refuses the one over the limit with 429."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    async def hit(self, viewer: Principal, action: str, per_minute: int) -> None:
        """Count one `action` by `viewer`; `TooManyRequests` if that exceeds `per_minute`.
        Admins and a limit of 0 are never limited."""
        if per_minute <= 0 or viewer.is_admin:
            return
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        key = f"rate:{action}:{viewer.user_id}:{window}"
        # The counter outlives its window a little, so a slow clock elsewhere still finds it.
        count = await self.cache.incr(key, ttl=2 * WINDOW_SECONDS)
        if count > per_minute:
            retry_after = int((window + 1) * WINDOW_SECONDS - now) + 1
            raise TooManyRequests(
                f"Too many {action} (at most {per_minute} per minute)", retry_after=retry_after
            )
