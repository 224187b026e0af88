"""TokenBucket: spacing, bursts, pauses, unlimited; on a fake clock and at short real rates."""

from __future__ import annotations

import asyncio
import time

import pytest

from dripper.channels.ratelimit import TokenBucket


class FakeTime:
    """A clock that only moves when a task sleeps: sleeping moves it to the sleeper's wake time."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now = max(self.now, self.now + seconds)
        await asyncio.sleep(0)


def bucket(rate: float | None, burst: int = 1) -> tuple[TokenBucket, FakeTime]:
    fake = FakeTime()
    return TokenBucket(rate, burst, clock=fake.clock, sleep=fake.sleep), fake


async def grant_times(limiter: TokenBucket, fake: FakeTime, n: int) -> list[float]:
    times = []
    for _ in range(n):
        await limiter.acquire()
        times.append(round(fake.now - 100.0, 6))
    return times


async def test_steady_rate_spaces_acquisitions() -> None:
    limiter, fake = bucket(10)
    assert await grant_times(limiter, fake, 4) == [0.0, 0.1, 0.2, 0.3]


async def test_burst_then_rate() -> None:
    limiter, fake = bucket(10, burst=3)
    assert await grant_times(limiter, fake, 5) == [0.0, 0.0, 0.0, 0.1, 0.2]


async def test_idle_time_refills_only_up_to_burst() -> None:
    limiter, fake = bucket(10, burst=2)
    await grant_times(limiter, fake, 2)
    fake.now += 10  # a long idle period
    assert await grant_times(limiter, fake, 4) == [10.0, 10.0, 10.1, 10.2]


async def test_pause_blocks_then_restarts_empty() -> None:
    limiter, fake = bucket(10, burst=5)
    limiter.pause(2.0)
    assert limiter.paused_until == pytest.approx(102.0)
    assert await grant_times(limiter, fake, 3) == [2.0, 2.1, 2.2]
    assert limiter.paused_until is None


async def test_pause_never_shortens() -> None:
    limiter, fake = bucket(None)
    limiter.pause(3.0)
    limiter.pause(1.0)
    assert await grant_times(limiter, fake, 1) == [3.0]


async def test_unlimited_never_sleeps() -> None:
    for rate in (None, 0, float("inf")):
        limiter, fake = bucket(rate)
        assert await grant_times(limiter, fake, 50) == [0.0] * 50
        assert fake.sleeps == []


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        TokenBucket(-1)
    with pytest.raises(ValueError):
        TokenBucket(float("nan"))
    with pytest.raises(ValueError):
        TokenBucket(10, burst=0)


async def test_real_rate_is_honoured_by_concurrent_acquirers() -> None:
    limiter = TokenBucket(40)
    started = time.monotonic()
    await asyncio.gather(*(limiter.acquire() for _ in range(21)))
    elapsed = time.monotonic() - started
    assert 0.48 <= elapsed < 1.0  # 20 intervals of 25 ms after the first, immediate, slot


async def test_real_pause_holds_waiters_that_already_reserved() -> None:
    limiter = TokenBucket(50)
    await limiter.acquire()
    waiters = [asyncio.ensure_future(limiter.acquire()) for _ in range(3)]
    await asyncio.sleep(0)  # let them reserve their slots (20, 40, 60 ms)
    started = time.monotonic()
    limiter.pause(0.3)
    await asyncio.gather(*waiters)
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 0.6  # after the pause, then 20 ms apart: 0.30, 0.32, 0.34
