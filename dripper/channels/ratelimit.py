"""An asyncio token bucket shared by every sender of one provider: a steady rate, a burst, pauses.

Each `acquire()` reserves the next free slot (GCRA, the "virtual scheduling" form of a token
bucket) and sleeps until it, so waiters are served in arrival order with one timer each and no
polling. `pause(seconds)` (a provider's "retry after") blocks every acquirer until then; waiters
that had a slot inside the pause take new ones after it, and the bucket restarts empty, so a
pause is never followed by a burst that would trip the provider's limit again.

A cancelled waiter gives up its slot unused: the rate can only come out lower, never higher.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    """`rate` acquisitions per second on average, at most `burst` at once.

    `rate` None, 0 or infinity means unlimited (benchmarks); pauses still apply.
    """

    def __init__(
        self,
        rate: float | None,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if rate is not None and (math.isnan(rate) or rate < 0):
            raise ValueError(f"rate must be a non-negative number of per second, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        unlimited = rate is None or rate == 0 or math.isinf(rate)
        self.rate = None if unlimited else rate
        self.burst = burst
        self._interval = 0.0 if rate is None or unlimited else 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        self._clock = clock
        self._sleep = sleep
        self._tat = -math.inf  # theoretical arrival time of the next conforming acquisition
        self._paused_until = -math.inf

    @property
    def paused_until(self) -> float | None:
        """The clock time pauses end at, or None when not paused."""
        return self._paused_until if self._paused_until > self._clock() else None

    def pause(self, seconds: float) -> None:
        """Block every acquirer for `seconds` from now (extends, never shortens, a pause)."""
        until = self._clock() + max(0.0, seconds)
        if until <= self._paused_until:
            return
        self._paused_until = until
        self._tat = max(self._tat, until + self._tolerance)

    def _reserve(self, now: float) -> float:
        if self._interval == 0.0:
            return max(now, self._paused_until)
        allowed = max(now, self._tat - self._tolerance, self._paused_until)
        self._tat = max(self._tat, allowed) + self._interval
        return allowed

    async def acquire(self) -> None:
        """Wait for the next slot."""
        while True:
            now = self._clock()
            allowed = self._reserve(now)
            if allowed > now:
                await self._sleep(allowed - now)
            if self._paused_until <= self._clock():
                return
