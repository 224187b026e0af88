"""The Telegram budget shared through PostgreSQL: several budgets on one key act as one.

Each `SharedBudget` here stands for one worker; they share nothing but the database.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest

from dripper.channels.telegram.shared import SharedBudget
from dripper.db import connection, open_db
from dripper.store.budget import prune_chat_buckets

pytestmark = pytest.mark.postgres

KEY = "telegram:4242"


@pytest.fixture
async def pg(migrated_pg_url: str) -> AsyncIterator[str]:
    async with open_db(migrated_pg_url):
        yield migrated_pg_url


def max_in_window(times: list[float], window: float = 1.0) -> int:
    ordered = sorted(times)
    best = first = 0
    for last, moment in enumerate(ordered):
        while moment - ordered[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best


async def grant_times(budget: SharedBudget, chats: list[int]) -> list[float]:
    async def one(chat: int) -> float:
        await budget.acquire(chat)
        return time.monotonic()

    return list(await asyncio.gather(*(one(chat) for chat in chats)))


async def test_workers_share_one_rate(pg: str) -> None:
    # 27/s is what a 30/s bot gets after dripper's margin; three workers, 75 messages.
    budgets = [SharedBudget(KEY, 27, 1.05) for _ in range(3)]
    started = time.monotonic()
    results = await asyncio.gather(
        *(grant_times(b, list(range(i * 100, i * 100 + 25))) for i, b in enumerate(budgets))
    )
    times = [t for result in results for t in result]
    assert len(times) == 75
    assert max_in_window(times) <= 30
    # Each worker alone would have finished in under a second.
    assert max(times) - started >= 74 / 27 - 0.1


async def test_a_chat_gets_one_message_per_interval_across_workers(pg: str) -> None:
    budgets = [SharedBudget(KEY, 1000, 0.3) for _ in range(2)]
    results = await asyncio.gather(*(grant_times(b, [7, 7, 7]) for b in budgets))
    times = sorted(t for result in results for t in result)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) == 6
    assert min(gaps) >= 0.3 - 0.01, gaps


async def test_a_pause_stops_every_worker(pg: str) -> None:
    first, second = SharedBudget(KEY, 1000, 1.05), SharedBudget(KEY, 1000, 1.05)
    await second.acquire(1)  # the second worker is already sending
    first.pause(1.0)  # the first one met a 429 with retry_after 1
    await asyncio.gather(*first._writes)  # the pause reached the database
    paused_at = time.monotonic()
    await second.acquire(2)
    assert time.monotonic() - paused_at >= 0.95
    assert second.paused_until is None


async def test_idle_chats_are_forgotten_and_the_bot_row_kept(pg: str) -> None:
    budget = SharedBudget(KEY, 1000, 1.05)
    await grant_times(budget, [1, 2])
    other = SharedBudget("telegram:99", 1000, 1.05)
    await grant_times(other, [1])
    assert await prune_chat_buckets(KEY, 3600) == 0
    await asyncio.sleep(0.05)
    assert await prune_chat_buckets(KEY, -1.1) == 2  # free for more than -1.1 s: both chats
    rows = await connection().execute_query_dict("SELECT key FROM rate_bucket ORDER BY key")
    assert [row["key"] for row in rows] == ["telegram:4242", "telegram:99", "telegram:99:chat:1"]
