"""Injectable clocks: real time for production, manual time for the demo and the tests.

The dispatcher never calls datetime.now() or asyncio.sleep() directly; it asks its clock, so a
test can move time forward deterministically and the demo can play six weeks in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current moment, aware UTC."""

    async def sleep_until(self, moment: datetime, wake: asyncio.Event) -> None:
        """Return at `moment` or as soon as `wake` is set, whichever comes first."""


async def _wait(wake: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), timeout=seconds)


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, moment: datetime, wake: asyncio.Event) -> None:
        await _wait(wake, (moment - self.now()).total_seconds())


class ManualClock:
    """Time that moves only when a test calls `advance` or `set`; sleepers wake when it passes."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._changed = asyncio.Condition()

    def now(self) -> datetime:
        return self._now

    async def set(self, moment: datetime) -> None:
        async with self._changed:
            self._now = moment
            self._changed.notify_all()

    async def advance(self, delta: timedelta) -> None:
        await self.set(self._now + delta)

    async def sleep_until(self, moment: datetime, wake: asyncio.Event) -> None:
        async def time_passed() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self._now >= moment)

        waiters = [asyncio.ensure_future(time_passed()), asyncio.ensure_future(wake.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
